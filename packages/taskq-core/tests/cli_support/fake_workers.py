"""Stand-ins for a worker process, to test the process manager on its own.

Each notes its start as a file named after its pid in ``$TASKQ_TEST_STARTS``, holding the
worker group it was given.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


def _note_start() -> None:
    """Note the start whole: written beside the directory, then moved in (a test that sees
    the file and stops the worker at once must never read it empty)."""
    group = os.environ.get("TASKQ_WORKER_GROUP", "")
    starts = Path(os.environ["TASKQ_TEST_STARTS"])
    partial = starts.parent / f"{starts.name}-{os.getpid()}.partial"
    partial.write_text(group)
    os.replace(partial, starts / str(os.getpid()))


def _sleep_forever() -> None:
    while True:
        time.sleep(1)


def stops_on_sigterm(options: Any) -> None:
    """Run until SIGTERM, then exit with status 0."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    _note_start()
    _sleep_forever()


def ignores_sigterm(options: Any) -> None:
    """Run until killed."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _note_start()
    _sleep_forever()


def exits_with_0(options: Any) -> None:
    """Exit at once with status 0, as a worker that ran its --max-tasks-per-child does."""
    _note_start()
    sys.exit(0)


def exits_with_3(options: Any) -> None:
    """Exit at once with status 3, as a worker that failed does."""
    _note_start()
    sys.exit(3)
