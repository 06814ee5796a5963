"""The event store contract: where workers and clients record task events and heartbeats."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from taskq.capabilities import Capability
from taskq.task_events import (
    DEFAULT_PAGE_SIZE,
    LATEST_TASKS,
    EventRow,
    MinuteRate,
    Retention,
    TaskEvent,
    TaskPage,
    TaskQuery,
    WorkerHeartbeat,
    WorkerId,
    WorkerStatus,
)

#: Default number of failures `AsyncEventStore.failures` returns.
DEFAULT_FAILURES = 10


class AsyncEventStore(ABC):
    """Keeps task events and worker heartbeats, within its `Retention`, and answers queries.

    Writers call `write` once per batch. A task's events come back ordered by time, ties in
    the order they were written, every field as written (a ``sent`` event's ``message`` bytes
    byte for byte) but a task id or name longer than ``taskq.task_events.MAX_TASK_ID_CHARS``
    or ``MAX_TASK_NAME_CHARS``, which is kept shortened (`stored_task_id`, `stored_task_name`)
    and found by its whole text too, and an error's type, message or traceback or a worker's
    host name past its bound, kept as `taskq.task_events.bounded_events` and `stored_worker`
    cut them, whoever writes them; tasks come back latest first. A store shared by processes
    (and hosts) declares ``Capability.CROSS_PROCESS``.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    retention: Retention

    async def startup(self) -> None:  # noqa: B027 - optional hook
        """Open connections; call before the first write or query."""

    async def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Close connections."""

    @abstractmethod
    async def write(
        self, events: Sequence[TaskEvent], heartbeats: Sequence[WorkerHeartbeat] = ()
    ) -> None:
        """Record a batch of events (in order) and heartbeats, then apply the retention."""

    async def write_rows(
        self,
        worker: WorkerId,
        rows: Sequence[EventRow],
        heartbeats: Sequence[WorkerHeartbeat] = (),
    ) -> None:
        """Like `write`, for events given as compact rows, all recorded by ``worker``.

        What `taskq.event_recorder.EventRecorder` calls. The default builds the `TaskEvent`
        objects and calls `write`; a store may override it to skip them.
        """
        await self.write([TaskEvent.from_row(worker, row) for row in rows], heartbeats)

    @abstractmethod
    async def task_events(self, task_id: str) -> list[TaskEvent]:
        """Every retained event of ``task_id``, in order; empty when none is retained.

        A task id too long to keep whole is looked up as `stored_task_id` keeps it.
        """

    @abstractmethod
    async def tasks(self, query: TaskQuery = LATEST_TASKS) -> TaskPage:
        """The tasks that match ``query``, latest first, at most ``query.limit`` of them."""

    @abstractmethod
    async def failures(self, limit: int = DEFAULT_FAILURES) -> list[TaskEvent]:
        """The latest ``failed`` events, newest first."""

    @abstractmethod
    async def rates(self, minutes: int, now: float | None = None) -> list[MinuteRate]:
        """Event counts for each of the last ``minutes`` minutes up to ``now``, oldest first.

        Every minute is present (with no counts when nothing happened). Counts include events
        that count retention has since dropped; minutes older than the age bound are gone.
        """

    @abstractmethod
    async def workers(self, stale_after: float, now: float | None = None) -> list[WorkerStatus]:
        """Each retained worker's latest heartbeat, ordered by worker id.

        A worker is alive when its heartbeat is dated at most ``stale_after`` seconds before
        or after ``now``; one dated further ahead is ``clock_ahead`` (`WorkerStatus.judged`
        says both).
        """


__all__ = ["DEFAULT_FAILURES", "DEFAULT_PAGE_SIZE", "AsyncEventStore"]
