"""`InMemoryEventStore`: task events and heartbeats in the memory of one process."""

from __future__ import annotations

import bisect
import heapq
import time
from collections.abc import Sequence
from typing import Any

from taskq.abc.event_store import DEFAULT_FAILURES, AsyncEventStore
from taskq.task_events import (
    LATEST_TASKS,
    EventKind,
    EventRow,
    MinuteRate,
    Retention,
    TaskEvent,
    TaskPage,
    TaskQuery,
    TaskSummary,
    WorkerHeartbeat,
    WorkerId,
    WorkerStatus,
    last_minutes,
    minute_of,
    page_cursor,
    read_cursor,
)

#: A retained event: time, write sequence, worker id (as text), kind (its value), task id, task
#: name and the other fields set, as in an `EventRow`: the garbage collector stops tracking
#: such tuples, so a full store does not slow down the collections of the process.
_Entry = tuple[float, int, str, str, str, str, tuple[tuple[str, Any], ...]]


def _summary(events: tuple[_Entry, ...]) -> TaskSummary:
    """A task as its latest event leaves it (``events``: the task's, in order)."""
    at, _, worker, kind, task_id, task_name, details = events[-1]
    fields = dict(details)
    return TaskSummary(
        task_id=task_id,
        task_name=task_name,
        state=EventKind(kind),
        worker=WorkerId.parse(worker),
        first_time=events[0][0],
        last_time=at,
        duration=fields.get("duration"),
        error_type=fields.get("error_type"),
        error_message=fields.get("error_message"),
    )


def _event(entry: _Entry) -> TaskEvent:
    at, _, worker, kind, task_id, task_name, details = entry
    return TaskEvent(
        EventKind(kind), task_id, task_name, WorkerId.parse(worker), at, **dict(details)
    )


class InMemoryEventStore(AsyncEventStore):
    """Keeps events in this process only: for tests, and for a worker and client in one process.

    Nothing crosses processes (``Capability.CROSS_PROCESS`` is not declared): a worker pool
    needs the SQLite or Redis store.
    """

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self._written = 0  # the sequence of the next event
        # Each task's events in order, as a tuple (replaced on each write), so that the
        # collector stops tracking it too; and the sequence of the first event written of it:
        # older entries elsewhere (a failure) belong to an earlier, dropped task of that id.
        self._tasks: dict[str, tuple[_Entry, ...]] = {}
        self._created: dict[str, int] = {}
        self._total = 0
        # (last time, last sequence, task id) of every task's latest event; stale entries are
        # skipped when popped.
        self._by_age: list[_Entry] = []
        self._failures: list[_Entry] = []
        self._rates: dict[int, dict[str, int]] = {}  # counts by kind value
        self._minutes: list[int] = []  # the keys of _rates, as a heap
        self._workers: dict[str, WorkerHeartbeat] = {}

    async def write(
        self, events: Sequence[TaskEvent], heartbeats: Sequence[WorkerHeartbeat] = ()
    ) -> None:
        """Record the batch, then drop what the retention no longer allows."""
        for event in events:
            self._add(str(event.worker), [event.as_row()])
        self._finish_write(heartbeats)

    async def write_rows(
        self,
        worker: WorkerId,
        rows: Sequence[EventRow],
        heartbeats: Sequence[WorkerHeartbeat] = (),
    ) -> None:
        """Record the rows as they are (events are built when a query asks for them)."""
        self._add(str(worker), rows)
        self._finish_write(heartbeats)

    def _finish_write(self, heartbeats: Sequence[WorkerHeartbeat]) -> None:
        for heartbeat in heartbeats:
            known = self._workers.get(str(heartbeat.worker))
            if known is None or known.time <= heartbeat.time:
                self._workers[str(heartbeat.worker)] = heartbeat
        self._retain(time.time())

    def _add(self, worker: str, rows: Sequence[EventRow]) -> None:
        """Add the rows ``worker`` recorded; a task whose latest event changed goes on the heap."""
        tasks, rates = self._tasks, self._rates
        latest: dict[str, _Entry] = {}
        sequence = self._written
        for kind, task_id, task_name, at, details in rows:
            entry = (at, sequence, worker, kind, task_id, task_name, details)
            events = tasks.get(task_id)
            if events is None:
                self._created[task_id] = sequence
                tasks[task_id] = (entry,)
                latest[task_id] = entry
            elif events[-1][0] <= at:
                tasks[task_id] = (*events, entry)
                latest[task_id] = entry
            else:
                place = bisect.bisect_right(events, (at, sequence), key=lambda item: item[:2])
                tasks[task_id] = (*events[:place], entry, *events[place:])
            sequence += 1
            if kind == "failed":
                self._failures.append(entry)
            minute = minute_of(at)
            counts = rates.get(minute)
            if counts is None:
                counts = rates[minute] = {}
                heapq.heappush(self._minutes, minute)
            counts[kind] = counts.get(kind, 0) + 1
        self._total += sequence - self._written
        self._written = sequence
        for entry in latest.values():
            heapq.heappush(self._by_age, entry)

    def _retain(self, now: float) -> None:
        oldest_allowed = now - self.retention.max_age
        dropped = False
        while self._by_age:
            entry = self._by_age[0]
            last_time, task_id = entry[0], entry[4]
            events = self._tasks.get(task_id)
            if events is None or events[-1] is not entry:  # no longer its latest event
                heapq.heappop(self._by_age)
            elif self._total > self.retention.max_events or last_time < oldest_allowed:
                heapq.heappop(self._by_age)
                del self._tasks[task_id], self._created[task_id]
                self._total -= len(events)
                dropped = True
            else:
                break
        if dropped:
            self._failures = [entry for entry in self._failures if self._retained(entry)]
        while self._minutes and self._minutes[0] + 60 <= oldest_allowed:
            del self._rates[heapq.heappop(self._minutes)]
        for worker, heartbeat in list(self._workers.items()):
            if heartbeat.time < oldest_allowed:
                del self._workers[worker]

    def _retained(self, entry: _Entry) -> bool:
        created = self._created.get(entry[4])
        return created is not None and created <= entry[1]

    async def task_events(self, task_id: str) -> list[TaskEvent]:
        """Every retained event of ``task_id``, in order."""
        return [_event(entry) for entry in self._tasks.get(task_id, ())]

    async def tasks(self, query: TaskQuery = LATEST_TASKS) -> TaskPage:
        """The matching tasks, latest first, one page of them."""
        after = None if query.cursor is None else read_cursor(query.cursor)
        found = sorted(
            ((events[-1][0], task_id) for task_id, events in self._tasks.items()),
            reverse=True,
        )
        page: list[TaskSummary] = []
        for key in found:
            if after is not None and key >= after:
                continue
            summary = _summary(self._tasks[key[1]])
            if query.matches(summary):
                if len(page) == query.limit:
                    return TaskPage(page, page_cursor(page[-1]))
                page.append(summary)
        return TaskPage(page)

    async def failures(self, limit: int = DEFAULT_FAILURES) -> list[TaskEvent]:
        """The latest ``failed`` events, newest first."""
        latest = heapq.nlargest(limit, self._failures, key=lambda item: item[:2])
        return [_event(entry) for entry in latest]

    async def rates(self, minutes: int, now: float | None = None) -> list[MinuteRate]:
        """Event counts per minute for the last ``minutes`` minutes, oldest first."""
        starts = last_minutes(minutes, time.time() if now is None else now)
        return [
            MinuteRate(start, {EventKind(k): n for k, n in self._rates.get(start, {}).items()})
            for start in starts
        ]

    async def workers(self, stale_after: float, now: float | None = None) -> list[WorkerStatus]:
        """Each retained worker's latest heartbeat, ordered by worker id."""
        moment = time.time() if now is None else now
        return [
            WorkerStatus(heartbeat, moment - heartbeat.time <= stale_after)
            for heartbeat in sorted(self._workers.values(), key=lambda beat: beat.worker)
        ]
