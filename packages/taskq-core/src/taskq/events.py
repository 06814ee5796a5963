"""Lifecycle events a broker fires on startup and shutdown, on the client or the worker side."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskq.state import TaskiqState


class TaskiqEvents(str, enum.Enum):
    """The events brokers fire; handlers receive the broker's `TaskiqState`."""

    CLIENT_STARTUP = "CLIENT_STARTUP"
    CLIENT_SHUTDOWN = "CLIENT_SHUTDOWN"
    WORKER_STARTUP = "WORKER_STARTUP"
    WORKER_SHUTDOWN = "WORKER_SHUTDOWN"


EventHandler = Callable[["TaskiqState"], Awaitable[None] | None]
