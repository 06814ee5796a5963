"""``python -m taskq.cli``: the same as the ``taskq`` command."""

import sys

from taskq.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
