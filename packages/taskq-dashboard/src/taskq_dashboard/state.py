"""What the dashboard app holds: the broker, the event store, the scheduler and its settings."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from taskq.toolkit import DEFAULT_STALE_AFTER_S

if TYPE_CHECKING:
    from taskq.abc.event_store import AsyncEventStore
    from taskq.abc.schedule_source import ScheduleSource
    from taskq.broker import AsyncBroker

logger = logging.getLogger("taskq.dashboard")


class SchedulerLike(Protocol):
    """What the dashboard uses of a scheduler: its schedule sources."""

    sources: list[ScheduleSource]


@dataclass(frozen=True)
class DashboardSettings:
    """How the dashboard behaves.

    Attributes:
        read_only: hide and refuse every action (cancel, replay, purge, schedule changes).
        stale_after: seconds after its last heartbeat a worker is flagged stale.
        refresh: seconds between two live updates pushed to open pages.
    """

    read_only: bool = False
    stale_after: float = DEFAULT_STALE_AFTER_S
    refresh: float = 2.0


class DashboardState:
    """The broker, event store and scheduler the pages read, started on first use.

    The dashboard starts what it was given on the first request (a mounted app gets no
    lifespan events of its own) and `close` stops only what it started.
    """

    def __init__(
        self,
        broker: AsyncBroker,
        store: AsyncEventStore,
        scheduler: SchedulerLike | None,
        settings: DashboardSettings,
    ) -> None:
        self.broker = broker
        self.store = store
        self.scheduler = scheduler
        self.settings = settings
        #: (time, ready, delayed, in flight, dead) each time the overview read the queue
        self.depth_history: deque[tuple[float, int, int, int, int]] = deque()
        #: False once the server stops: live-update streams then end (see `end_streams`)
        self.streams_open = True
        self._lock = asyncio.Lock()
        self._started: list[Any] = []
        self._ready = False

    async def ensure_started(self) -> None:
        """Start the broker (and the store, when it is not the broker's) unless running."""
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                await self._start()

    async def _start(self) -> None:
        if not self.broker.is_started:
            await self.broker.startup()
            self._started.append(self.broker)
        if self.store is not self.broker.event_store:
            await self.store.startup()
            self._started.append(self.store)
        if self.scheduler is not None:
            for source in self.scheduler.sources:
                await source.startup()
                self._started.append(source)
        self._ready = True

    def end_streams(self) -> None:
        """Let every live-update stream end at its next tick, so that a stop need not wait."""
        self.streams_open = False

    async def close(self) -> None:
        """Stop what `ensure_started` started, last started first."""
        started, self._started = self._started, []
        self._ready = False
        for part in reversed(started):
            try:
                await part.shutdown()
            except Exception:
                logger.exception("Stopping %s failed", type(part).__name__)
