"""``taskq cancel``: record the cancellation of tasks in a broker's cancellation store."""

from __future__ import annotations

import argparse
import asyncio
import sys

from taskq.abc.cancellation import CancellationStore
from taskq.cli.targets import (
    TargetError,
    add_app_dir_argument,
    add_working_directory_to_path,
    import_broker,
)
from taskq.exceptions import TaskiqError

#: Exit status of a usage error: a bad option, a target that cannot be imported, no store.
EXIT_USAGE = 2


def main(argv: list[str]) -> int:
    """Cancel tasks by id: queued ones never start, running ones are stopped."""
    parser = argparse.ArgumentParser(
        prog="taskq cancel",
        description="Cancel tasks by id through a broker's cancellation store: a queued task "
        "never starts, a running async task is stopped, a running sync task sees "
        "Context.cancelled. Each task's result is a failed one with TaskCancelledError.",
    )
    parser.add_argument("broker", help="the broker, as module:attribute")
    parser.add_argument("task_ids", nargs="+", metavar="TASK_ID", help="ids of tasks to cancel")
    parser.add_argument("--reason", default="", help="why, stored with the cancellation")
    add_app_dir_argument(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on --help and on usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    add_working_directory_to_path(args.app_dir)
    try:
        broker = import_broker(args.broker)
    except TargetError as error:
        print(f"taskq cancel: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    store = broker.target_broker().cancellation
    if store is None:
        print(
            f"taskq cancel: error: {args.broker!r} has no cancellation store: give it one with "
            "broker.with_cancellation(...)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    task_ids = [_text(task_id) for task_id in args.task_ids]
    try:
        asyncio.run(_cancel(store, task_ids, _text(args.reason)))
    except TaskiqError as error:
        print(f"taskq cancel: error: {error}", file=sys.stderr)
        return 1
    return 0


def _text(argument: str) -> str:
    """``argument`` as text a store can write, its bytes that are not UTF-8 replaced by U+FFFD.

    Python keeps such bytes of the command line as lone surrogates, which no store encodes.
    """
    return argument.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


async def _cancel(store: CancellationStore, task_ids: list[str], reason: str) -> None:
    await store.startup()
    try:
        for task_id in task_ids:
            await store.cancel(task_id, reason)
            print(f"cancelled {task_id}")
    finally:
        await store.shutdown()
