"""taskiq's worker flags that taskq cannot honour: each is refused with a one-line reason.

A command line written for ``taskiq worker`` then fails with what to do instead, not with
argparse's "unrecognized arguments". The flags are hidden from ``--help``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

#: flag -> why taskq does not take it, and what to use instead.
REFUSED_FLAGS: dict[str, str] = {
    "--receiver": "taskq runs its own receiver; change what a run does with middlewares",
    "--receiver_arg": "taskq runs its own receiver; its options are the flags of this command",
    "--max-fails": "a worker process that dies is restarted after a growing delay, without limit",
    "--hardkill-count": (
        "the first SIGTERM/SIGINT stops gracefully (workers still running after "
        "--shutdown-timeout are killed), a second one kills them at once"
    ),
    "--wait-tasks-timeout": "use --shutdown-timeout: it bounds the wait for running tasks",
    "--use-process-pool": (
        "sync tasks run in a thread pool (--max-threadpool-threads); for CPU-bound tasks "
        "run more worker processes (--workers)"
    ),
    "--max-process-pool-processes": (
        "sync tasks run in a thread pool (--max-threadpool-threads); for CPU-bound tasks "
        "run more worker processes (--workers)"
    ),
}


class _Refuse(argparse.Action):
    """Exit with status 2 and the flag's reason when the flag is given."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        flag = option_string or self.option_strings[0]
        parser.exit(2, f"{parser.prog}: {flag} is not supported: {REFUSED_FLAGS[flag]}\n")


def add_refused_flags(parser: argparse.ArgumentParser) -> None:
    """Add each of `REFUSED_FLAGS`, hidden, refusing with its reason."""
    for flag in REFUSED_FLAGS:
        parser.add_argument(flag, nargs="?", action=_Refuse, help=argparse.SUPPRESS)
