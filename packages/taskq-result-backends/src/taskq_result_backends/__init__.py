"""taskq-result-backends: result backends shared by processes (SQLite) or hosts (Redis).

It also holds `SQLiteCancellationStore` and `SQLiteUniqueStore`: cancellations and unique
task keys shared by the processes of one host.

``RedisResultBackend`` is imported on first access, so that this package imports without
the ``redis`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskq_result_backends.errors import (
    ResultKeyTypeError,
    ResultStoreBusyError,
    ResultStoreUnavailableError,
)
from taskq_result_backends.sqlite import SQLiteResultBackend
from taskq_result_backends.sqlite_cancellation import SQLiteCancellationStore
from taskq_result_backends.sqlite_unique import SQLiteUniqueStore

if TYPE_CHECKING:
    from taskq_result_backends.redis import RedisResultBackend

__all__ = [
    "RedisResultBackend",
    "ResultKeyTypeError",
    "ResultStoreBusyError",
    "ResultStoreUnavailableError",
    "SQLiteCancellationStore",
    "SQLiteResultBackend",
    "SQLiteUniqueStore",
]


def __getattr__(name: str) -> Any:
    """Import `RedisResultBackend` when it is first asked for (it needs the redis extra)."""
    if name == "RedisResultBackend":
        from taskq_result_backends.redis import RedisResultBackend

        return RedisResultBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
