"""The options of ``taskq worker``: each flag, its environment twin, its default and its checks."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskq.acks import AcknowledgeType
from taskq.cli import converters
from taskq.cli.discovery import DEFAULT_TASKS_PATTERN
from taskq.cli.env_parser import EnvArgumentParser
from taskq.cli.logs import DEFAULT_LOG_FORMAT, DEFAULT_LOG_LEVEL
from taskq.cli.refused_flags import add_refused_flags
from taskq.receiver.execution import DEFAULT_THREADPOOL_THREADS
from taskq.receiver.receiver import DEFAULT_MAX_ASYNC_TASKS

#: Environment variables of the options are this prefix plus the flag's name in capitals.
ENV_PREFIX = "TASKQ_WORKER_"
DEFAULT_WORKERS = 2
DEFAULT_SHUTDOWN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class WorkerOptions:
    """What one ``taskq worker`` run was asked to do (every process gets a copy).

    Attributes:
        broker: the broker's target, ``module:attribute``.
        modules: modules to import for their tasks.
        workers: worker processes to run (default 2).
        max_async_tasks: tasks one worker process runs at once (default 100).
        max_async_tasks_jitter: a random 0 to this many tasks added to ``max_async_tasks``
            per process, so that processes do not reach their limits together (default 0).
        max_prefetch: messages a process takes beyond those it can run (default 0).
        max_threadpool_threads: threads running sync tasks, per process (default 8).
        ack_type: when messages are acknowledged (default ``when_saved``).
        shutdown_timeout: seconds running tasks get to finish on a stop (default 5).
        max_tasks_per_child: tasks after which a process is replaced (default: never).
        reload: restart the processes when a ``.py`` file changes (default off).
        reload_dir: the directories ``reload`` watches (default: the current one).
        app_dir: the directory the broker and task modules are imported from, and
            discovered in (default: the current one).
        fs_discover: import the modules matching ``tasks_pattern`` (default off).
        tasks_pattern: globs of the task modules to discover (default ``**/tasks.py``).
        log_level: the logging level name (default ``INFO``).
        log_format: the %-style logging format, or ``json`` (one JSON object per line).
        log_tasks: log one INFO line per task run: name, id, duration, outcome (default off).
        task_failure_level: the level a task's failure (with its traceback) is logged at
            (default ``ERROR``).
        events: the event store URL task events and heartbeats are recorded in
            (``sqlite://events.db``, ``redis://...``; default: none, nothing recorded).
        configure_logging: set up logging with ``log_level`` and ``log_format`` (default
            on; off when the application configures logging itself).
        parse: cast arguments to the tasks' annotated types (default on).
        propagate_errors: let a task's exception reach its generator dependencies
            (default on).
        do_not_use_gitignore: accepted for taskiq's command lines; ``reload`` never
            reads ``.gitignore``.
    """

    broker: str
    modules: tuple[str, ...] = ()
    workers: int = DEFAULT_WORKERS
    max_async_tasks: int = DEFAULT_MAX_ASYNC_TASKS
    max_async_tasks_jitter: int = 0
    max_prefetch: int = 0
    max_threadpool_threads: int = DEFAULT_THREADPOOL_THREADS
    ack_type: AcknowledgeType = AcknowledgeType.WHEN_SAVED
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT_S
    max_tasks_per_child: int | None = None
    reload: bool = False
    reload_dir: tuple[str, ...] = ()
    app_dir: str | None = None
    fs_discover: bool = False
    tasks_pattern: tuple[str, ...] = (DEFAULT_TASKS_PATTERN,)
    log_level: str = DEFAULT_LOG_LEVEL
    log_format: str = DEFAULT_LOG_FORMAT
    log_tasks: bool = False
    task_failure_level: str = "ERROR"
    events: str | None = None
    configure_logging: bool = True
    parse: bool = True
    propagate_errors: bool = True
    do_not_use_gitignore: bool = False


#: The defaults the help shows, taken from `WorkerOptions` itself.
_FIELD_DEFAULTS: dict[str, Any] = {
    field.name: field.default for field in dataclasses.fields(WorkerOptions)
}


def env_variable(flag: str) -> str:
    """Return a flag's environment twin: ``--max-prefetch`` → ``TASKQ_WORKER_MAX_PREFETCH``."""
    return ENV_PREFIX + flag.removeprefix("--").replace("-", "_").upper()


def parse_worker_args(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> WorkerOptions:
    """Return the options of ``argv``, with ``environ`` (default: os.environ) filling the gaps.

    A flag on the command line wins over its environment variable, which wins over the
    default. Bad values exit with status 2 and a usage message, as argparse does.
    """
    return WorkerOptions(**build_parser().parse_options(argv, environ))


def build_parser() -> EnvArgumentParser:
    """Return the argument parser of ``taskq worker``."""
    parser = EnvArgumentParser(
        prog="taskq worker",
        description="Run worker processes that execute the tasks a broker delivers.",
        env_prefix=ENV_PREFIX,
        defaults=_FIELD_DEFAULTS,
    )
    parser.add_argument(
        "broker", help="the broker to listen to, as module:attribute (e.g. myapp.broker:broker)"
    )
    parser.add_argument("modules", nargs="*", default=[], help="modules to import for their tasks")
    _add_process_options(parser)
    _add_receiver_options(parser)
    add_discovery_options(parser)
    parser.add_option(
        "--log-level", help="logging level", convert=converters.log_level, metavar="LEVEL"
    )
    parser.add_option(
        "--log-format",
        help="logging format: %-style, or json for one JSON object per line",
        convert=converters.log_format,
        metavar="FORMAT",
    )
    parser.add_option(
        "--log-tasks",
        help="log one INFO line per task run: name, id, duration, outcome",
        action=argparse.BooleanOptionalAction,
        env_convert=converters.boolean,
    )
    parser.add_option(
        "--task-failure-level",
        help="logging level of a task's failure, logged once with its traceback",
        convert=converters.log_level,
        metavar="LEVEL",
    )
    parser.add_option(
        "--events",
        help="record task events and worker heartbeats in this event store "
        "(sqlite://events.db, redis://host:6379/0, ...)",
        convert=converters.event_store_url,
        metavar="URL",
    )
    parser.add_option(
        "--configure-logging",
        help="set up logging with --log-level and --log-format; "
        "--no-configure-logging when the application configures logging itself",
        action=argparse.BooleanOptionalAction,
        env_convert=converters.boolean,
    )
    parser.add_option(
        "--app-dir",
        "-d",
        help="directory to import the broker and the task modules from (and to discover them in)",
        convert=converters.directory,
        default_text="the current directory",
        metavar="DIR",
    )
    add_refused_flags(parser)
    return parser


def _add_process_options(parser: EnvArgumentParser) -> None:
    parser.add_option(
        "--workers",
        "-w",
        help="worker processes to run",
        convert=converters.at_least(1),
        metavar="N",
    )
    parser.add_option(
        "--shutdown-timeout",
        help="seconds running tasks get to finish after SIGTERM/SIGINT",
        convert=converters.seconds,
        metavar="SECONDS",
    )
    parser.add_option(
        "--max-tasks-per-child",
        help="replace a worker process after it ran this many tasks",
        convert=converters.at_least(1),
        metavar="N",
    )
    parser.add_option(
        "--reload",
        "-r",
        help="restart the worker processes when a .py file under the current directory changes",
        action=argparse.BooleanOptionalAction,
        env_convert=converters.boolean,
    )
    parser.add_option(
        "--reload-dir",
        help="directory --reload watches instead of the current one; repeat for several "
        "(environment: comma-separated)",
        action="append",
        convert=converters.directory,
        env_convert=converters.directories,
        default_text="the current directory",
        metavar="DIR",
    )
    parser.add_option(
        "--do-not-use-gitignore",
        help="accepted for taskiq's command lines: --reload never reads .gitignore",
        action="store_true",
        env_convert=converters.boolean,
    )


def _add_receiver_options(parser: EnvArgumentParser) -> None:
    parser.add_option(
        "--max-async-tasks",
        help="tasks one worker process runs at once",
        convert=converters.at_least(1),
        metavar="N",
    )
    parser.add_option(
        "--max-async-tasks-jitter",
        help="a random 0 to N added to --max-async-tasks per worker process, so that "
        "processes do not reach their limits together",
        convert=converters.at_least(0),
        metavar="N",
    )
    parser.add_option(
        "--max-prefetch",
        help="messages a worker process takes beyond those it can run",
        convert=converters.at_least(0),
        metavar="N",
    )
    parser.add_option(
        "--max-threadpool-threads",
        help="threads running sync tasks, per worker process",
        convert=converters.at_least(1),
        metavar="N",
    )
    parser.add_option(
        "--ack-type",
        help="when messages are acknowledged: "
        + ", ".join(ack_type.value for ack_type in AcknowledgeType),
        convert=converters.ack_type,
        metavar="WHEN",
    )
    parser.add_option(
        "--parse",
        help="cast arguments to the tasks' annotated types (--no-parse: pass them as sent)",
        action=argparse.BooleanOptionalAction,
        env_convert=converters.boolean,
    )
    parser.add_option(
        "--propagate-errors",
        help="let a task's exception reach its generator dependencies",
        action=argparse.BooleanOptionalAction,
        env_convert=converters.boolean,
    )


def add_discovery_options(parser: EnvArgumentParser) -> None:
    """Add ``--fs-discover`` and ``--tasks-pattern`` (options of every command importing tasks)."""
    parser.add_option(
        "--fs-discover",
        "-fsd",
        help="also import every module under the current directory (or --app-dir) matching "
        "--tasks-pattern",
        action=argparse.BooleanOptionalAction,
        env_convert=converters.boolean,
    )
    parser.add_option(
        "--tasks-pattern",
        "-tp",
        help="glob of the task modules to discover; repeat for several "
        "(environment: comma-separated)",
        action="append",
        convert=converters.pattern,
        env_convert=converters.patterns,
        metavar="GLOB",
    )
