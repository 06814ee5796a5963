"""The contracts implementations fulfil: brokers, result backends, middlewares, and the rest.

The bottom layer: these modules import only other contracts and plain data (messages,
capabilities, exceptions). `AsyncBroker` is named here for compatibility; it is defined in
`taskq.broker` and imported on first use.
"""

from typing import TYPE_CHECKING, Any

from taskq.abc.cancellation import CancellationStore
from taskq.abc.event_store import AsyncEventStore
from taskq.abc.formatter import TaskiqFormatter
from taskq.abc.middleware import TaskiqMiddleware
from taskq.abc.result_backend import AsyncResultBackend
from taskq.abc.schedule_source import ScheduleSource
from taskq.abc.serializer import TaskiqSerializer

if TYPE_CHECKING:
    from taskq.broker import AsyncBroker


def __getattr__(name: str) -> Any:
    # The compatibility name, resolved on use (see `taskq.abc.broker`).
    if name == "AsyncBroker":
        from taskq.broker import AsyncBroker

        return AsyncBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AsyncBroker",
    "AsyncEventStore",
    "AsyncResultBackend",
    "CancellationStore",
    "ScheduleSource",
    "TaskiqFormatter",
    "TaskiqMiddleware",
    "TaskiqSerializer",
]
