"""`InMemoryEventStore`: task events and heartbeats in the memory of one process."""

from __future__ import annotations

import bisect
import heapq
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
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


@dataclass(slots=True)
class _Task:
    """A task's retained events, in order (its `TaskEvent` objects are built when asked for).

    ``created`` is the sequence of its first event written: older entries elsewhere (a
    failure) belong to an earlier, dropped task of the same id.
    """

    created: int
    events: list[_Entry] = field(default_factory=list)

    def summary(self) -> TaskSummary:
        """The task as its latest event leaves it."""
        first_time, latest = self.events[0][0], self.events[-1]
        at, _, worker, kind, task_id, task_name, details = latest
        fields = dict(details)
        return TaskSummary(
            task_id=task_id,
            task_name=task_name,
            state=EventKind(kind),
            worker=WorkerId.parse(worker),
            first_time=first_time,
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
        self._tasks: dict[str, _Task] = {}
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
        latest: dict[str, _Task] = {}
        sequence = self._written
        for kind, task_id, task_name, at, details in rows:
            task = tasks.get(task_id)
            if task is None:
                task = tasks[task_id] = _Task(sequence)
            entry = (at, sequence, worker, kind, task_id, task_name, details)
            sequence += 1
            events = task.events
            if not events or events[-1][0] <= at:
                events.append(entry)
                latest[task_id] = task
            else:
                bisect.insort(events, entry, key=lambda item: item[:2])
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
        for task in latest.values():
            heapq.heappush(self._by_age, task.events[-1])

    def _retain(self, now: float) -> None:
        oldest_allowed = now - self.retention.max_age
        dropped = False
        while self._by_age:
            entry = self._by_age[0]
            last_time, task_id = entry[0], entry[4]
            task = self._tasks.get(task_id)
            if task is None or task.events[-1] is not entry:  # no longer its latest event
                heapq.heappop(self._by_age)
            elif self._total > self.retention.max_events or last_time < oldest_allowed:
                heapq.heappop(self._by_age)
                del self._tasks[task_id]
                self._total -= len(task.events)
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
        task = self._tasks.get(entry[4])
        return task is not None and task.created <= entry[1]

    async def task_events(self, task_id: str) -> list[TaskEvent]:
        """Every retained event of ``task_id``, in order."""
        task = self._tasks.get(task_id)
        return [] if task is None else [_event(entry) for entry in task.events]

    async def tasks(self, query: TaskQuery = LATEST_TASKS) -> TaskPage:
        """The matching tasks, latest first, one page of them."""
        after = None if query.cursor is None else read_cursor(query.cursor)
        found = sorted(
            ((task.events[-1][0], task_id) for task_id, task in self._tasks.items()),
            reverse=True,
        )
        page: list[TaskSummary] = []
        for key in found:
            if after is not None and key >= after:
                continue
            summary = self._tasks[key[1]].summary()
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
