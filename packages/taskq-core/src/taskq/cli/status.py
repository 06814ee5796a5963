"""``taskq status``: workers, queue depths, throughput and the last failures, on one screen."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from taskq.abc.event_store import AsyncEventStore
from taskq.cli import converters
from taskq.cli.env_parser import EnvArgumentParser
from taskq.cli.targets import (
    TargetError,
    add_working_directory_to_path,
    import_broker,
    import_object,
)
from taskq.cli.terminal import printable
from taskq.event_stores.urls import open_event_store, sqlite_path
from taskq.exceptions import TaskiqError
from taskq.status_report import (
    DEFAULT_FAILURES,
    DEFAULT_STALE_AFTER_S,
    StatusReport,
    collect_status,
)

if TYPE_CHECKING:
    from taskq.broker import AsyncBroker
    from taskq.task_events import WorkerStatus

ENV_PREFIX = "TASKQ_STATUS_"
#: Exit status when no worker is alive (or the store cannot be read): the health check fails.
EXIT_UNHEALTHY = 1
EXIT_USAGE = 2
#: Clear the terminal and put the cursor top left, for ``--watch``.
_REDRAW = "\x1b[H\x1b[2J"
#: Workers the screen lists at most (alive ones first); ``--json`` gives every one.
MAX_WORKERS_SHOWN = 50
#: Characters of a failure's error the screen shows at most; ``--json`` gives all of it.
MAX_ERROR_SHOWN = 200


@dataclass(frozen=True)
class StatusOptions:
    """The options of ``taskq status``; each has a ``TASKQ_STATUS_*`` environment twin."""

    broker: str
    events: str | None = None
    stale_after: float = DEFAULT_STALE_AFTER_S
    failures: int = DEFAULT_FAILURES
    json: bool = False
    watch: bool = False
    interval: float = 2.0
    app_dir: str | None = None


def main(argv: list[str]) -> int:
    """Show workers, queue depths, throughput and last failures; exit 1 if no worker is alive."""
    try:
        options = parse_status_args(argv)
    except SystemExit as exit_:  # argparse exits on --help and on usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    add_working_directory_to_path(options.app_dir)
    try:
        with collector_paused():
            broker = import_broker(options.broker)
            store = event_store_of(broker, options.events)
    except TaskiqError as error:
        print(f"taskq status: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(run(options, broker, store, sys.stdout))
    except KeyboardInterrupt:
        return 0
    except TaskiqError as error:
        print(f"taskq status: error: {error}", file=sys.stderr)
        return EXIT_UNHEALTHY


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off, then freeze what exists.

    Importing the app, the broker's client library and the store's makes hundreds of
    thousands of objects that live as long as the process: the collector's passes over them
    during the imports, and the interpreter's last one at exit, were about 8% of the
    instructions of a ``taskq status --json`` command. Frozen (`gc.freeze`), they are left out
    of every later collection, so ``--watch`` still collects what its redraws leave behind.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def parse_status_args(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> StatusOptions:
    """The options of ``argv``, with ``environ`` (default: os.environ) filling the gaps."""
    return StatusOptions(**build_parser().parse_options(argv, environ))


def build_parser() -> EnvArgumentParser:
    """The argument parser of ``taskq status``."""
    parser = EnvArgumentParser(
        prog="taskq status",
        description="Show the workers (alive or stale), the queue's depth by state, the "
        "throughput and failure rate over 1, 5 and 15 minutes and the last failures. The exit "
        "status is 1 when no worker is alive: a health check.",
        env_prefix=ENV_PREFIX,
        defaults={field.name: field.default for field in dataclasses.fields(StatusOptions)},
    )
    parser.add_argument("broker", help="the broker, as module:attribute (e.g. myapp.broker:broker)")
    parser.add_option(
        "--events",
        help="the event store to read: a URL (sqlite://PATH, redis://HOST/DB?prefix=P) or "
        "module:attribute",
        convert=str,
        default_text="the broker's (with_event_store)",
        metavar="STORE",
    )
    parser.add_option(
        "--stale-after",
        help="seconds after its last heartbeat a worker counts as stale",
        convert=converters.positive_seconds,
        metavar="SECONDS",
    )
    parser.add_option(
        "--failures",
        help="how many of the last failures to show",
        convert=converters.at_least(0),
        metavar="N",
    )
    for flag, text in (
        ("--json", "print the status as one JSON object (one per redraw with --watch)"),
        ("--watch", "redraw every --interval seconds until interrupted"),
    ):
        parser.add_option(
            flag, help=text, action=argparse.BooleanOptionalAction, env_convert=converters.boolean
        )
    parser.add_option(
        "--interval",
        help="seconds between two redraws of --watch",
        convert=converters.positive_seconds,
        metavar="SECONDS",
    )
    parser.add_option(
        "--app-dir",
        "-d",
        help="directory to import the broker from",
        convert=converters.directory,
        default_text="the current directory",
        metavar="DIR",
    )
    return parser


def event_store_of(broker: AsyncBroker, events: str | None) -> AsyncEventStore:
    """The store ``--events`` names, else the broker's; raise `TargetError` when there is none.

    A ``sqlite://PATH`` with no file at PATH is refused too (`refuse_a_missing_sqlite_file`).
    """
    if events is None:
        if broker.event_store is None:
            raise TargetError(
                "the broker has no event store: give it one (broker.with_event_store(...)) "
                "or name one with --events (e.g. --events sqlite://taskq-events.sqlite3)"
            )
        return broker.event_store
    if "://" in events:
        refuse_a_missing_sqlite_file(events)
        return open_event_store(events)
    found = import_object(events)
    if not isinstance(found, AsyncEventStore) and callable(found):
        found = found()
    if not isinstance(found, AsyncEventStore):
        raise TargetError(f"{events!r} is a {type(found).__name__}, not an event store")
    return found


def refuse_a_missing_sqlite_file(events: str | None) -> None:
    """Refuse ``--events sqlite://PATH`` when no file PATH exists.

    Opening it would create the file, empty, and report no worker: what a mistyped path
    looks like. Raises `TargetError` saying so.
    """
    if events is None or not events.startswith("sqlite://"):
        return
    path = sqlite_path(events)
    if not os.path.exists(path):
        raise TargetError(
            f"no event store file {path!r} (from the directory {os.getcwd()!r}): check the "
            "path; workers create it when they record with --events and the same URL"
        )


async def run(
    options: StatusOptions, broker: AsyncBroker, store: AsyncEventStore, out: TextIO
) -> int:
    """Print the status once (or until interrupted with ``--watch``); the exit status.

    With ``--watch``, a store that cannot be read shows the error and is tried again at the
    next redraw; without it, the error ends the command.
    """
    await store.startup()
    try:
        while True:
            try:
                report = await collect_status(
                    store, broker, stale_after=options.stale_after, failures=options.failures
                )
            except TaskiqError as error:
                if not options.watch:
                    raise
                out.write(f"{_REDRAW}taskq status: error: {printable(str(error))}\n")
                out.flush()
                await asyncio.sleep(options.interval)
                continue
            if options.json:
                out.write(json.dumps(report.as_dict()) + "\n")
            else:
                out.write((_REDRAW if options.watch else "") + render(report))
            out.flush()
            if not options.watch:
                return 0 if report.alive else EXIT_UNHEALTHY
            await asyncio.sleep(options.interval)
    finally:
        await store.shutdown()


def render(report: StatusReport) -> str:
    """The report as the screen of ``taskq status``, control characters shown as escapes."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.time))
    lines = [f"taskq status  {stamp}  {report.broker}", ""]
    lines += _workers(report)
    lines += ["", *_queue(report), "", *_throughput(report)]
    if report.failures:
        lines += ["", "Last failures:"]
        for event in report.failures:
            when = time.strftime("%H:%M:%S", time.gmtime(event.time))
            error = f"{event.error_type or 'error'}: {event.error_message or ''}".rstrip(": ")
            error = _cut(error, MAX_ERROR_SHOWN)
            lines.append(f"  {when}  {event.task_name}  {event.task_id}  {error}")
    return "\n".join(map(printable, lines)) + "\n"


def _workers(report: StatusReport) -> list[str]:
    ahead = sum(status.clock_ahead for status in report.workers)
    stale = len(report.workers) - report.alive - ahead
    lines = [f"Workers: {report.alive} alive, {stale} stale"]
    if ahead:  # a heartbeat dated in the future: its host's clock runs ahead
        lines[0] += f", {ahead} with a clock ahead (liveness unknown: set their clocks right)"
    if not report.workers:
        return [*lines, "  (no heartbeat recorded)"]
    rows = [("WORKER", "STATE", "RUNNING", "PROCESSED", "FAILED", "LAST SEEN")]
    shown = sorted(report.workers, key=lambda status: not status.alive)[:MAX_WORKERS_SHOWN]
    for status in shown:
        beat = status.heartbeat
        rows.append(
            (
                str(beat.worker),
                _state(status),
                str(beat.running),
                str(beat.processed),
                str(beat.failed),
                _last_seen(status, report.time),
            )
        )
    lines += _table(rows)
    hidden = len(report.workers) - len(shown)
    if hidden:
        lines.append(f"  ... and {hidden} more not shown (--json lists every worker)")
    return lines


def _state(status: WorkerStatus) -> str:
    return "alive" if status.alive else "clock ahead" if status.clock_ahead else "stale"


def _last_seen(status: WorkerStatus, now: float) -> str:
    if status.clock_ahead:
        return f"dated {status.last_seen - now:.0f} s ahead"
    return f"{max(now - status.last_seen, 0):.0f} s ago"


def _cut(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and the count of those left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def _queue(report: StatusReport) -> list[str]:
    queue = report.queue
    if queue is None:
        return [f"Queue: n/a ({report.queue_note})"]
    return [
        f"Queue {queue.queue}: ready {queue.ready}, delayed {queue.delayed}, "
        f"in flight {queue.in_flight}, dead {queue.dead}; consumers {len(queue.consumers)}"
    ]


def _throughput(report: StatusReport) -> list[str]:
    rows = [("WINDOW", "FINISHED/MIN", "SUCCEEDED", "FAILED", "FAILURE RATE")]
    for window in report.throughput:
        rate = "-" if window.failure_rate is None else f"{window.failure_rate:.1%}"
        rows.append(
            (
                f"{window.minutes} min",
                f"{window.per_minute:.1f}",
                str(window.succeeded),
                str(window.failed),
                rate,
            )
        )
    return ["Throughput:", *_table(rows)]


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    rows = [tuple(map(printable, row)) for row in rows]  # aligned as printed
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
