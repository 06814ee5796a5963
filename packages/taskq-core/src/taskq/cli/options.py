"""The options of ``taskq worker``: each flag, its environment twin, its default and its checks."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskq.acks import AcknowledgeType
from taskq.cli.discovery import DEFAULT_TASKS_PATTERN
from taskq.cli.logs import DEFAULT_LOG_FORMAT, DEFAULT_LOG_LEVEL, LOG_LEVELS, check_log_format
from taskq.receiver.execution import DEFAULT_THREADPOOL_THREADS
from taskq.receiver.receiver import DEFAULT_MAX_ASYNC_TASKS

#: Environment variables of the options are this prefix plus the flag's name in capitals.
ENV_PREFIX = "TASKQ_WORKER_"
DEFAULT_WORKERS = 2
DEFAULT_SHUTDOWN_TIMEOUT_S = 5.0

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class WorkerOptions:
    """What one ``taskq worker`` run was asked to do (every process gets a copy).

    Attributes:
        broker: the broker's target, ``module:attribute``.
        modules: modules to import for their tasks.
        workers: worker processes to run (default 2).
        max_async_tasks: tasks one worker process runs at once (default 100).
        max_prefetch: messages a process takes beyond those it can run (default 0).
        max_threadpool_threads: threads running sync tasks, per process (default 8).
        ack_type: when messages are acknowledged (default ``when_saved``).
        shutdown_timeout: seconds running tasks get to finish on a stop (default 5).
        max_tasks_per_child: tasks after which a process is replaced (default: never).
        reload: restart the processes when a ``.py`` file changes (default off).
        fs_discover: import the modules matching ``tasks_pattern`` (default off).
        tasks_pattern: globs of the task modules to discover (default ``**/tasks.py``).
        log_level: the logging level name (default ``INFO``).
        log_format: the %-style logging format.
    """

    broker: str
    modules: tuple[str, ...] = ()
    workers: int = DEFAULT_WORKERS
    max_async_tasks: int = DEFAULT_MAX_ASYNC_TASKS
    max_prefetch: int = 0
    max_threadpool_threads: int = DEFAULT_THREADPOOL_THREADS
    ack_type: AcknowledgeType = AcknowledgeType.WHEN_SAVED
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT_S
    max_tasks_per_child: int | None = None
    reload: bool = False
    fs_discover: bool = False
    tasks_pattern: tuple[str, ...] = (DEFAULT_TASKS_PATTERN,)
    log_level: str = DEFAULT_LOG_LEVEL
    log_format: str = DEFAULT_LOG_FORMAT


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
    parser = build_parser()
    namespace = parser.parse_args(argv)
    parser.fill_from_environment(namespace, os.environ if environ is None else environ)
    values = vars(namespace)
    for name in ("modules", "tasks_pattern"):
        if name in values:
            values[name] = tuple(values[name])
    return WorkerOptions(**values)


class _WorkerParser(argparse.ArgumentParser):
    """An argument parser whose options also read an environment variable each."""

    def __init__(self) -> None:
        super().__init__(
            prog="taskq worker",
            description="Run worker processes that execute the tasks a broker delivers.",
            epilog=(
                f"Each option can also be set by the environment variable in brackets "
                f"({ENV_PREFIX}<OPTION>); the command line wins."
            ),
            argument_default=argparse.SUPPRESS,
        )
        self._twins: list[tuple[str, str, Callable[[str], Any]]] = []

    def add_option(
        self,
        *flags: str,
        help: str,
        convert: Callable[[str], Any] | None = None,
        env_convert: Callable[[str], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Add an option; ``env_convert`` (default ``convert``) reads its environment twin."""
        dest = flags[0].removeprefix("--").replace("-", "_")
        variable = env_variable(flags[0])
        shown = _show(_FIELD_DEFAULTS[dest])
        text = f"{help} (default: {shown}) [{variable}]".replace("%", "%%")
        if convert is not None:
            kwargs["type"] = convert
        self.add_argument(*flags, dest=dest, help=text, **kwargs)
        reader = env_convert or convert
        if reader is None:
            raise TypeError(f"option {flags[0]} needs a converter for {variable}")
        self._twins.append((dest, variable, reader))

    def fill_from_environment(
        self, namespace: argparse.Namespace, environ: Mapping[str, str]
    ) -> None:
        """Set each option not given on the command line from its environment variable."""
        for dest, variable, convert in self._twins:
            raw = environ.get(variable)
            if raw is None or hasattr(namespace, dest):
                continue
            try:
                setattr(namespace, dest, convert(raw))
            except argparse.ArgumentTypeError as exc:
                self.error(f"environment variable {variable}={raw!r}: {exc}")


def build_parser() -> _WorkerParser:
    """Return the argument parser of ``taskq worker``."""
    parser = _WorkerParser()
    parser.add_argument(
        "broker", help="the broker to listen to, as module:attribute (e.g. myapp.broker:broker)"
    )
    parser.add_argument("modules", nargs="*", default=[], help="modules to import for their tasks")
    _add_process_options(parser)
    _add_receiver_options(parser)
    _add_discovery_options(parser)
    parser.add_option("--log-level", help="logging level", convert=_log_level, metavar="LEVEL")
    parser.add_option("--log-format", help="logging format", convert=_log_format, metavar="FORMAT")
    return parser


def _add_process_options(parser: _WorkerParser) -> None:
    parser.add_option(
        "--workers", "-w", help="worker processes to run", convert=_at_least(1), metavar="N"
    )
    parser.add_option(
        "--shutdown-timeout",
        help="seconds running tasks get to finish after SIGTERM/SIGINT",
        convert=_seconds,
        metavar="SECONDS",
    )
    parser.add_option(
        "--max-tasks-per-child",
        help="replace a worker process after it ran this many tasks",
        convert=_at_least(1),
        metavar="N",
    )
    parser.add_option(
        "--reload",
        "-r",
        help="restart the worker processes when a .py file under the current directory changes",
        action=argparse.BooleanOptionalAction,
        env_convert=_boolean,
    )


def _add_receiver_options(parser: _WorkerParser) -> None:
    parser.add_option(
        "--max-async-tasks",
        help="tasks one worker process runs at once",
        convert=_at_least(1),
        metavar="N",
    )
    parser.add_option(
        "--max-prefetch",
        help="messages a worker process takes beyond those it can run",
        convert=_at_least(0),
        metavar="N",
    )
    parser.add_option(
        "--max-threadpool-threads",
        help="threads running sync tasks, per worker process",
        convert=_at_least(1),
        metavar="N",
    )
    parser.add_option(
        "--ack-type",
        help="when messages are acknowledged: "
        + ", ".join(ack_type.value for ack_type in AcknowledgeType),
        convert=_ack_type,
        metavar="WHEN",
    )


def _add_discovery_options(parser: _WorkerParser) -> None:
    parser.add_option(
        "--fs-discover",
        "-fsd",
        help="also import every module under the current directory matching --tasks-pattern",
        action=argparse.BooleanOptionalAction,
        env_convert=_boolean,
    )
    parser.add_option(
        "--tasks-pattern",
        "-tp",
        help="glob of the task modules to discover; repeat for several "
        "(environment: comma-separated)",
        action="append",
        convert=_pattern,
        env_convert=_patterns,
        metavar="GLOB",
    )


def _show(default: object) -> str:
    if default is None:
        return "none"
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, tuple):
        return ",".join(default)
    if isinstance(default, enum.Enum):
        return str(default.value)
    return str(default)


# -- converters: each reads one value, from the command line or the environment ------------


def _at_least(minimum: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return convert


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise argparse.ArgumentTypeError(f"expected 1/0, true/false, yes/no or on/off, got {text!r}")


def _ack_type(text: str) -> AcknowledgeType:
    try:
        return AcknowledgeType(text.strip().lower())
    except ValueError:
        choices = ", ".join(ack_type.value for ack_type in AcknowledgeType)
        raise argparse.ArgumentTypeError(f"expected one of {choices}, got {text!r}") from None


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return level


def _log_format(text: str) -> str:
    try:
        check_log_format(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a logging format ({exc}): {text!r}") from None
    return text


def _pattern(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a glob pattern, got an empty string")
    return text.strip()


def _patterns(text: str) -> tuple[str, ...]:
    return tuple(_pattern(part) for part in text.split(","))
