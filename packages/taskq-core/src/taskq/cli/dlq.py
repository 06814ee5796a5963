"""``taskq dlq``: list, show, replay and purge the dead letters of a broker that keeps them.

It works with every broker whose ``dead_letters`` is a `taskq.abc.dead_letters.DeadLetterQueue`
(``RedisStreamBroker``, ``AmqpBroker``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from taskq.abc.dead_letters import dead_letters_of
from taskq.cli.converters import at_least
from taskq.cli.targets import (
    TargetError,
    add_app_dir_argument,
    add_working_directory_to_path,
    import_broker,
)
from taskq.cli.terminal import printable
from taskq.exceptions import TaskiqError

if TYPE_CHECKING:
    from taskq.abc.broker import AsyncBroker
    from taskq.abc.dead_letters import DeadLetter

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
#: Bytes of an undecodable message shown by ``show``.
RAW_PREVIEW = 200


def main(argv: list[str]) -> int:
    """Inspect and replay the dead letters of a broker's queue."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on --help and on usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.action in ("replay", "purge") and not (args.ids or args.all):
        print(f"taskq dlq {args.action}: error: give dead-letter ids, or --all", file=sys.stderr)
        return EXIT_USAGE
    add_working_directory_to_path(args.app_dir)
    try:
        broker = import_broker(args.broker)
    except TargetError as error:
        print(f"taskq dlq: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if dead_letters_of(broker) is None:
        print(
            f"taskq dlq: error: {args.broker!r} is a {type(broker).__name__}, which keeps no "
            "dead letters (its dead_letters is not a taskq.abc.dead_letters.DeadLetterQueue)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return asyncio.run(_run(broker, args))
    except TaskiqError as error:
        print(f"taskq dlq: error: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskq dlq",
        description="Inspect and replay the dead letters of a broker's queue: "
        "messages rejected by a worker, or delivered too often without an acknowledgement.",
    )
    add_app_dir_argument(parser)  # before the action: taskq dlq -d DIR list ...
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list dead letters, oldest first")
    listing.add_argument("broker", help="the broker, as module:attribute")
    listing.add_argument("--count", type=at_least(1), default=100, help="at most this many (100)")
    listing.add_argument("--after", help="start after this dead-letter id (paging)")
    show = actions.add_parser("show", help="show dead letters in full, with their message")
    show.add_argument("broker", help="the broker, as module:attribute")
    show.add_argument("ids", nargs="+", metavar="ID", help="dead-letter ids")
    subcommands = [listing, show]
    for name, text in (("replay", "send to the queue again"), ("purge", "delete for good")):
        action = actions.add_parser(name, help=f"{text}: the ids given, or --all")
        action.add_argument("broker", help="the broker, as module:attribute")
        action.add_argument("ids", nargs="*", metavar="ID", help="dead-letter ids")
        action.add_argument("--all", action="store_true", help="every dead letter there is now")
        subcommands.append(action)
    for subcommand in subcommands:  # after it: taskq dlq list ... -d DIR
        add_app_dir_argument(subcommand, default=argparse.SUPPRESS)
    return parser


async def _run(broker: AsyncBroker, args: argparse.Namespace) -> int:
    queue = dead_letters_of(broker)
    assert queue is not None  # checked by main
    try:
        if args.action == "list":
            letters = await queue.list(args.count, args.after)
            for letter in letters:
                print(_summary(broker, letter))
            print(f"{len(letters)} of {await queue.count()} dead letter(s) in {queue.where}")
            return 0
        if args.action == "show":
            missing = 0
            for dead_letter_id in args.ids:
                found = await queue.show(dead_letter_id)
                if found is None:
                    print(f"{dead_letter_id}: no such dead letter", file=sys.stderr)
                    missing += 1
                else:
                    print(_details(broker, found))
            return EXIT_NOT_FOUND if missing else 0
        ids = None if args.all else args.ids
        if args.action == "replay":
            done = await queue.replay(ids)
            print(f"replayed {done} dead letter(s)")
        else:
            done = await queue.purge(ids)
            print(f"purged {done} dead letter(s)")
        return EXIT_NOT_FOUND if ids is not None and done < len(ids) else 0
    finally:
        await broker.shutdown()


def _summary(broker: AsyncBroker, letter: DeadLetter) -> str:
    when = letter.dead_at.strftime("%Y-%m-%d %H:%M:%SZ") if letter.dead_at else "-"
    return printable(f"{letter.id}  {when}  {_task_of(broker, letter)}  {letter.reason}")


def _task_of(broker: AsyncBroker, letter: DeadLetter) -> str:
    """``task_name[task_id]``, or what the bytes are when they are not a taskq message."""
    if letter.payload is None:
        return "(no message)"
    try:
        message = broker.formatter.loads(letter.payload)
    except Exception:
        return f"(undecodable, {len(letter.payload)} bytes)"
    return f"{message.task_name}[{message.task_id}]"


def _details(broker: AsyncBroker, letter: DeadLetter) -> str:
    lines = [
        f"id:          {letter.id}",
        f"dead at:     {letter.dead_at.isoformat() if letter.dead_at else '-'}",
        f"reason:      {letter.reason}",
        f"deliveries:  {'-' if letter.deliveries is None else letter.deliveries}",
    ]
    lines += [f"{name + ':':<12} {value}" for name, value in letter.details().items()]
    try:
        message = broker.formatter.loads(letter.payload or b"")
    except Exception as exc:
        raw = (letter.payload or b"")[:RAW_PREVIEW]
        lines.append(f"message:     not a taskq message ({exc}): {raw!r}")
    else:
        lines += [
            f"task:        {message.task_name}",
            f"task id:     {message.task_id}",
            f"labels:      {message.labels}",
            f"args:        {message.args}",
            f"kwargs:      {message.kwargs}",
        ]
    return "\n".join(map(printable, lines)) + "\n"
