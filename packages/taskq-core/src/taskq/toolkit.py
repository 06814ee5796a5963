"""What sibling packages and plugins use from core beyond the public API: one declared seam.

A package that adds a subcommand, a broker or a middleware imports these names from here,
never from core's private modules (``taskq.cli.*``, ``taskq.kicker``, ...), which may change.

Command-line helpers (a subcommand reads like ``taskq worker``):
    `EnvArgumentParser`: an argument parser whose options each have an environment twin.
    `converters`: the option value readers (`converters.boolean`, `converters.seconds`, ...).
    `add_discovery_options`: ``--fs-discover`` and ``--tasks-pattern``.
    `DEFAULT_TASKS_PATTERN`, `discover_modules`: find task modules under a directory.
    `configure_logging`: logging to stderr, as the worker does it.
    `add_working_directory_to_path`, `import_module`, `import_object`, `import_broker`,
    `foreign_object_hint`, `TargetError`: import ``module:attribute`` targets with errors
    that say what to do.
    `event_store_of`: the event store an ``--events`` option names, else the broker's.

Monitoring (what ``taskq status`` shows, for other monitors such as the dashboard):
    `collect_status`, `DEFAULT_STALE_AFTER_S`: a `StatusReport` of an event store and a
    broker's queue; the heartbeat age after which a worker counts as stale.
    `encode_error`: an exception as plain data (type, message, args), as results store it.
    `error_line`: an exception as one line, ``Type: message``, for a log line or another
    error (not its ``repr``, which some libraries' exceptions leave the message out of).

The worker environment:
    `WORKER_GROUP_ENV`: the variable naming the group of a ``taskq worker`` process (the pid
    of the manager that started it); unset in a process started otherwise.

Servers (for brokers that talk to one):
    `Reconnector`, `FIRST_RETRY_DELAY_S`: the reconnect policy, retry with capped exponential
    backoff and one log line per outage.
    `is_loopback_host`: whether a host or address is reachable only from this machine (what a
    server checks before listening without authentication).

Packages:
    `import_on_access`: a module-level ``__getattr__`` importing a package's names on first
    use, so that importing the package costs little.

Event loops:
    `running_loop`: the running event loop, reusing a loop seen before where looking it up
    costs a system call (before Python 3.12).
    `cancel_until_done`: stop a background task for sure, cancelling it again where a client
    library swallowed one cancellation.
    `await_keeping_cancellation`: await a call in a task of its own, so that a client library
    cannot swallow a cancellation of the caller.

Checking constructor arguments:
    `check_seconds`, `check_count`: refuse a timeout, interval, size or count that makes no
    sense (NaN, an infinity, a negative number, 0 where it must be positive) with a
    ValueError naming the argument and what it must be. `MAX_INT32_MS_S`: the longest time a
    C int of milliseconds holds, the ``maximum`` of seconds that end up as one.

SQLite files (for parts that keep their data in a file shared on one host):
    `SQLiteFile`: one process's connection to a file, used from a thread of its own, in WAL
    mode, reopened after a fork or when the file is replaced. `give_back_free_pages`: shrink
    a file after deletions. `is_busy_error`: whether SQLite's error says another connection
    holds the lock.

Sending and hooks:
    `send_task`: send a task by name, with labels, through a broker's middlewares, without
    the task being registered in this process.
    `maybe_await`: await a hook's result when it is awaitable (hooks may be sync or async).

Each name is imported on first use, so importing this module costs nothing until then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq import _lazy

if TYPE_CHECKING:
    from taskq._awaitable import maybe_await
    from taskq._cancelling import await_keeping_cancellation, cancel_until_done
    from taskq._lazy import import_on_access
    from taskq._running_loop import running_loop
    from taskq.checks import MAX_INT32_MS_S, check_count, check_seconds
    from taskq.cli import converters
    from taskq.cli.discovery import DEFAULT_TASKS_PATTERN, discover_modules
    from taskq.cli.env_parser import EnvArgumentParser
    from taskq.cli.environment import WORKER_GROUP_ENV
    from taskq.cli.logs import configure_logging
    from taskq.cli.options import add_discovery_options
    from taskq.cli.status import event_store_of
    from taskq.cli.targets import (
        TargetError,
        add_working_directory_to_path,
        foreign_object_hint,
        import_broker,
        import_module,
        import_object,
    )
    from taskq.kicker import send_task
    from taskq.loopback import is_loopback_host
    from taskq.reconnect import FIRST_RETRY_DELAY_S, Reconnector
    from taskq.remote_error import encode_error, error_line
    from taskq.sqlite_file import SQLiteFile, give_back_free_pages, is_busy_error
    from taskq.status_report import DEFAULT_STALE_AFTER_S, collect_status

#: Each name of the toolkit, with the module that defines it (or that it is).
_DEFINED_IN = {
    "DEFAULT_STALE_AFTER_S": "taskq.status_report",
    "FIRST_RETRY_DELAY_S": "taskq.reconnect",
    "MAX_INT32_MS_S": "taskq.checks",
    "DEFAULT_TASKS_PATTERN": "taskq.cli.discovery",
    "EnvArgumentParser": "taskq.cli.env_parser",
    "Reconnector": "taskq.reconnect",
    "SQLiteFile": "taskq.sqlite_file",
    "TargetError": "taskq.cli.targets",
    "WORKER_GROUP_ENV": "taskq.cli.environment",
    "add_discovery_options": "taskq.cli.options",
    "add_working_directory_to_path": "taskq.cli.targets",
    "await_keeping_cancellation": "taskq._cancelling",
    "cancel_until_done": "taskq._cancelling",
    "configure_logging": "taskq.cli.logs",
    "converters": "taskq.cli.converters",  # the module itself
    "check_count": "taskq.checks",
    "check_seconds": "taskq.checks",
    "collect_status": "taskq.status_report",
    "discover_modules": "taskq.cli.discovery",
    "encode_error": "taskq.remote_error",
    "error_line": "taskq.remote_error",
    "import_on_access": "taskq._lazy",
    "is_busy_error": "taskq.sqlite_file",
    "is_loopback_host": "taskq.loopback",
    "event_store_of": "taskq.cli.status",
    "foreign_object_hint": "taskq.cli.targets",
    "give_back_free_pages": "taskq.sqlite_file",
    "import_broker": "taskq.cli.targets",
    "import_module": "taskq.cli.targets",
    "import_object": "taskq.cli.targets",
    "maybe_await": "taskq._awaitable",
    "running_loop": "taskq._running_loop",
    "send_task": "taskq.kicker",
}


__getattr__ = _lazy.import_on_access(globals(), _DEFINED_IN)


__all__ = [
    "DEFAULT_STALE_AFTER_S",
    "DEFAULT_TASKS_PATTERN",
    "FIRST_RETRY_DELAY_S",
    "MAX_INT32_MS_S",
    "WORKER_GROUP_ENV",
    "EnvArgumentParser",
    "Reconnector",
    "SQLiteFile",
    "TargetError",
    "add_discovery_options",
    "add_working_directory_to_path",
    "await_keeping_cancellation",
    "cancel_until_done",
    "check_count",
    "check_seconds",
    "collect_status",
    "configure_logging",
    "converters",
    "discover_modules",
    "encode_error",
    "error_line",
    "event_store_of",
    "foreign_object_hint",
    "give_back_free_pages",
    "import_broker",
    "import_module",
    "import_object",
    "import_on_access",
    "is_busy_error",
    "is_loopback_host",
    "maybe_await",
    "running_loop",
    "send_task",
]
