"""``taskq scheduler``: import a `TaskiqScheduler`, start it, send fires until SIGTERM/SIGINT.

Registered in the ``taskq.cli`` entry-point group, so ``taskq scheduler --help`` lists the
options; each has a ``TASKQ_SCHEDULER_<OPTION>`` environment twin.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskq.exceptions import InvalidScheduleError
from taskq.toolkit import (
    DEFAULT_TASKS_PATTERN,
    EnvArgumentParser,
    TargetError,
    add_discovery_options,
    add_working_directory_to_path,
    configure_logging,
    converters,
    discover_modules,
    foreign_object_hint,
    import_module,
    import_object,
)
from taskq_scheduler.fire_times import parse_zone
from taskq_scheduler.scheduler import DEFAULT_UPDATE_INTERVAL_S, TaskiqScheduler

logger = logging.getLogger("taskq.scheduler")

ENV_PREFIX = "TASKQ_SCHEDULER_"
EXIT_USAGE = 2
EXIT_FAILURE = 1
LOG_FORMAT = "[%(asctime)s][scheduler][%(levelname)s] %(name)s: %(message)s"


@dataclass(frozen=True)
class SchedulerOptions:
    """What one ``taskq scheduler`` run was asked to do.

    Attributes:
        scheduler: the scheduler's target, ``module:attribute`` (or a function returning one).
        modules: modules to import for their tasks.
        skip_first_run: do not send, at start, the fires that fell due just before (off).
        update_interval: seconds between two reads of the sources (60).
        tz: the timezone of cron schedules without a ``cron_offset`` (``UTC``).
        fs_discover: import the modules matching ``tasks_pattern`` (off).
        tasks_pattern: globs of the task modules to discover (``**/tasks.py``).
        log_level: the logging level name (``INFO``).
        app_dir: the directory the scheduler and task modules are imported from, and
            discovered in (default: the current one).
        configure_logging: set up logging with ``log_level`` (on; off when the application
            configures logging itself).
        loop_interval: accepted for taskiq's command lines, unused: the loop sleeps until
            the next fire.
    """

    scheduler: str
    modules: tuple[str, ...] = ()
    skip_first_run: bool = False
    update_interval: float = DEFAULT_UPDATE_INTERVAL_S
    tz: str = "UTC"
    fs_discover: bool = False
    tasks_pattern: tuple[str, ...] = (DEFAULT_TASKS_PATTERN,)
    log_level: str = "INFO"
    app_dir: str | None = None
    configure_logging: bool = True
    loop_interval: float | None = None


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(SchedulerOptions)}


def main(argv: list[str]) -> int:
    """Run a scheduler: send the tasks of its schedule sources when they fall due."""
    try:
        options = parse_scheduler_args(argv)
    except SystemExit as exit_:  # argparse exits on --help and on usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if options.configure_logging:
        configure_logging(options.log_level, LOG_FORMAT)
    try:
        scheduler = import_scheduler(options)
    except TargetError as error:
        print(f"taskq scheduler: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(serve(scheduler, options))


def parse_scheduler_args(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> SchedulerOptions:
    """Return the options of ``argv``, with ``environ`` (default: os.environ) filling the gaps."""
    return SchedulerOptions(**build_parser().parse_options(argv, environ))


def build_parser() -> EnvArgumentParser:
    """Return the argument parser of ``taskq scheduler``."""
    parser = EnvArgumentParser(
        prog="taskq scheduler",
        description="Send the tasks of a scheduler's schedule sources when they fall due.",
        env_prefix=ENV_PREFIX,
        defaults=_DEFAULTS,
    )
    parser.add_argument(
        "scheduler",
        help="the TaskiqScheduler (or a function returning one), as module:attribute",
    )
    parser.add_argument("modules", nargs="*", default=[], help="modules to import for their tasks")
    parser.add_option(
        "--skip-first-run",
        help="do not send, at start, the fires that fell due in the minute before",
        action=argparse.BooleanOptionalAction,
        env_convert=converters.boolean,
    )
    parser.add_option(
        "--update-interval",
        help="seconds between two reads of the schedule sources",
        convert=converters.positive_seconds,
        metavar="SECONDS",
    )
    parser.add_option(
        "--tz",
        help="timezone of cron schedules without a cron_offset: a name or an offset like +02:00",
        convert=_timezone,
        metavar="ZONE",
    )
    add_discovery_options(parser)
    parser.add_option(
        "--log-level", help="logging level", convert=converters.log_level, metavar="LEVEL"
    )
    parser.add_option(
        "--configure-logging",
        help="set up logging with --log-level; --no-configure-logging when the application "
        "configures logging itself",
        action=argparse.BooleanOptionalAction,
        env_convert=converters.boolean,
    )
    parser.add_option(
        "--app-dir",
        "-d",
        help="directory to import the scheduler and the task modules from (and to discover "
        "them in)",
        convert=converters.directory,
        default_text="the current directory",
        metavar="DIR",
    )
    parser.add_option(
        "--loop-interval",
        help="accepted for taskiq's command lines: the loop sleeps until the next fire",
        convert=converters.positive_seconds,
        metavar="SECONDS",
    )
    return parser


def import_scheduler(options: SchedulerOptions) -> TaskiqScheduler:
    """Import the scheduler, mark its broker as a scheduler's, import the task modules."""
    add_working_directory_to_path(options.app_dir)
    found = import_object(options.scheduler)
    if callable(found) and not isinstance(found, TaskiqScheduler):
        found = found()
    if not isinstance(found, TaskiqScheduler):
        raise TargetError(
            foreign_object_hint(options.scheduler, found, "TaskiqScheduler", "scheduler")
            or f"{options.scheduler!r} is an object of type {type(found).__name__}, "
            "not a TaskiqScheduler"
        )
    found.broker.is_scheduler_process = True
    names = list(options.modules)
    if options.fs_discover:
        root = Path(options.app_dir or Path.cwd())
        names += [n for n in discover_modules(root, options.tasks_pattern) if n not in names]
    for name in names:
        import_module(name)
    return found


async def serve(scheduler: TaskiqScheduler, options: SchedulerOptions) -> int:
    """Start the scheduler, run it until SIGTERM/SIGINT, shut it down; return the exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _request_stop, stop, signal.Signals(signum).name)
    try:
        await scheduler.startup()
    except Exception as exc:
        logger.error("Starting the scheduler failed: %s", exc, exc_info=True)
        return EXIT_FAILURE
    try:
        logger.info(
            "Started (pid %d): %d source(s), default timezone %s",
            os.getpid(),
            len(scheduler.sources),
            options.tz,
        )
        await scheduler.run(
            stop,
            skip_first_run=options.skip_first_run,
            update_interval=options.update_interval,
            tz=options.tz,
        )
    finally:
        await scheduler.shutdown()
    logger.info("Stopped")
    return 0


def _request_stop(stop: asyncio.Event, reason: str) -> None:
    logger.info("%s: stopping", reason)
    stop.set()


def _timezone(text: str) -> str:
    try:
        parse_zone(text)
    except InvalidScheduleError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None
    return text
