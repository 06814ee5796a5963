"""`InMemoryEventStore`: task events and heartbeats in the memory of one process."""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Sequence
from operator import itemgetter
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
    bounded_events,
    bounded_heartbeats,
    bounded_rows,
    check_times,
    last_minutes,
    minute_of,
    page_cursor,
    read_cursor,
    stored_task_id,
    stored_worker,
)

#: The fields of one retained event, in the flat tuple of its task's events: time, write
#: sequence, worker id (as text), kind (its value), task name and the other fields set (the
#: duration among them), as in an `EventRow`. One flat tuple of strings and numbers per task
#: (replaced on each write) rather than a tuple per event: the garbage collector counts every
#: container the store keeps, and stops tracking such tuples, so a full store does not slow
#: the process down.
_STRIDE = 6
_Entry = tuple[float, int, str, str, str, tuple[tuple[str, Any], ...]]
_kind_of = itemgetter(0)
_time_of = itemgetter(3)

#: A failure kept for `InMemoryEventStore.failures`: time, sequence, task id.
_Failure = tuple[float, int, str]


def _entries(events: tuple[Any, ...]) -> list[_Entry]:
    """The events of a task's flat tuple, one tuple each, in order."""
    return [events[at : at + _STRIDE] for at in range(0, len(events), _STRIDE)]


def _summary(task_id: str, events: tuple[Any, ...]) -> TaskSummary:
    """A task as its latest event leaves it (``events``: the task's flat tuple, in order)."""
    at, _, worker, kind, task_name, details = events[-_STRIDE:]
    fields = dict(details)
    return TaskSummary(
        task_id=task_id,
        task_name=task_name,
        state=EventKind(kind),
        worker=WorkerId.parse(worker),
        first_time=events[0],
        last_time=at,
        duration=fields.get("duration"),
        error_type=fields.get("error_type"),
        error_message=fields.get("error_message"),
    )


def _event(task_id: str, entry: _Entry) -> TaskEvent:
    at, _, worker, kind, task_name, details = entry
    return TaskEvent(
        EventKind(kind),
        task_id,
        task_name,
        WorkerId.parse(worker),
        at,
        **dict(details),
    )


class InMemoryEventStore(AsyncEventStore):
    """Keeps events in this process only: for tests, and for a worker and client in one process.

    Nothing crosses processes (``Capability.CROSS_PROCESS`` is not declared): a worker pool
    needs the SQLite or Redis store.
    """

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self._written = 0  # the sequence of the next event
        # Each task's events in order, as one flat tuple (see `_STRIDE`).
        self._tasks: dict[str, tuple[Any, ...]] = {}
        self._total = 0
        # One (time, sequence, task id) per task, a heap: its latest event when pushed. A task's
        # latest event only gets later, so the top is a lower bound of the true oldest; a stale
        # top is pushed again with its task's latest event before the retention trusts it.
        self._by_age: list[_Failure] = []
        # The failed events, as (time, sequence, task id).
        self._failures: list[_Failure] = []
        self._rates: dict[int, Counter[str]] = {}  # counts by kind value
        self._minutes: list[int] = []  # the keys of _rates, as a heap
        self._workers: dict[str, WorkerHeartbeat] = {}

    async def write(
        self, events: Sequence[TaskEvent], heartbeats: Sequence[WorkerHeartbeat] = ()
    ) -> None:
        """Record the batch, then drop what the retention no longer allows."""
        check_times((event.time for event in events), heartbeats)
        for event in bounded_events(events):
            self._add(str(event.worker), [event.as_row()])
        self._finish_write(bounded_heartbeats(heartbeats))

    async def write_rows(
        self,
        worker: WorkerId,
        rows: Sequence[EventRow],
        heartbeats: Sequence[WorkerHeartbeat] = (),
    ) -> None:
        """Record the rows as they are (events are built when a query asks for them)."""
        check_times(map(_time_of, rows), heartbeats)
        self._add(str(stored_worker(worker)), bounded_rows(rows))
        self._finish_write(bounded_heartbeats(heartbeats))

    def _finish_write(self, heartbeats: Sequence[WorkerHeartbeat]) -> None:
        for heartbeat in heartbeats:
            known = self._workers.get(str(heartbeat.worker))
            if known is None or known.time <= heartbeat.time:
                self._workers[str(heartbeat.worker)] = heartbeat
        self._retain(time.time())

    def _add(self, worker: str, rows: Sequence[EventRow]) -> None:
        """Add the rows ``worker`` recorded, in order, and count them by minute and kind."""
        tasks = self._tasks
        sequence = self._written
        for kind, task_id, task_name, at, details in rows:
            entry = (at, sequence, worker, kind, task_name, details)
            events = tasks.get(task_id)
            if events is None:
                tasks[task_id] = entry
                heapq.heappush(self._by_age, (at, sequence, task_id))
            elif events[-_STRIDE] <= at:
                tasks[task_id] = events + entry
            else:  # earlier than the task's latest event: after those at or before ``at``
                place = len(events) - _STRIDE
                while place > 0 and events[place - _STRIDE] > at:
                    place -= _STRIDE
                tasks[task_id] = events[:place] + entry + events[place:]
            if kind == "failed":
                self._failures.append((at, sequence, task_id))
            sequence += 1
        self._total += sequence - self._written
        self._written = sequence
        self._count(rows)

    def _count(self, rows: Sequence[EventRow]) -> None:
        """Add the rows to the counts per minute (at once when they fall in one minute)."""
        if not rows:
            return
        times = list(map(_time_of, rows))
        first = minute_of(min(times))
        if first == minute_of(max(times)):
            self._counts_of(first).update(map(_kind_of, rows))
            return
        for row, at in zip(rows, times, strict=True):
            counts = self._counts_of(minute_of(at))
            counts[row[0]] += 1

    def _counts_of(self, minute: int) -> Counter[str]:
        counts = self._rates.get(minute)
        if counts is None:
            counts = self._rates[minute] = Counter()
            heapq.heappush(self._minutes, minute)
        return counts

    def _retain(self, now: float) -> None:
        oldest_allowed = now - self.retention.max_age
        by_age, tasks = self._by_age, self._tasks
        dropped = False
        while by_age:
            last_time, last_sequence, task_id = by_age[0]
            if self._total <= self.retention.max_events and last_time >= oldest_allowed:
                break  # a lower bound of every task's latest time: no task is too old
            events = tasks[task_id]
            if events[1 - _STRIDE] != last_sequence:  # its latest event came since
                heapq.heapreplace(by_age, (events[-_STRIDE], events[1 - _STRIDE], task_id))
            else:
                heapq.heappop(by_age)
                del tasks[task_id]
                self._total -= len(events) // _STRIDE
                dropped = True
        if dropped:
            self._failures = [failure for failure in self._failures if self._retained(failure)]
        while self._minutes and self._minutes[0] + 60 <= oldest_allowed:
            del self._rates[heapq.heappop(self._minutes)]
        for worker, heartbeat in list(self._workers.items()):
            if heartbeat.time < oldest_allowed:
                del self._workers[worker]

    def _retained(self, failure: _Failure) -> bool:
        """Whether the failed event is still kept (its task may be gone, or a new one of its id)."""
        events = self._tasks.get(failure[2], ())
        return failure[1] in events[1::_STRIDE]

    async def task_events(self, task_id: str) -> list[TaskEvent]:
        """Every retained event of ``task_id`` (its whole id or the one kept), in order."""
        kept = stored_task_id(task_id)
        return [_event(kept, entry) for entry in _entries(self._tasks.get(kept, ()))]

    async def tasks(self, query: TaskQuery = LATEST_TASKS) -> TaskPage:
        """The matching tasks, latest first, one page of them."""
        after = None if query.cursor is None else read_cursor(query.cursor)
        found = sorted(
            ((events[-_STRIDE], task_id) for task_id, events in self._tasks.items()),
            reverse=True,
        )
        page: list[TaskSummary] = []
        for key in found:
            if after is not None and key >= after:
                continue
            summary = _summary(key[1], self._tasks[key[1]])
            if query.matches(summary):
                if len(page) == query.limit:
                    return TaskPage(page, page_cursor(page[-1]))
                page.append(summary)
        return TaskPage(page)

    async def failures(self, limit: int = DEFAULT_FAILURES) -> list[TaskEvent]:
        """The latest ``failed`` events, newest first."""
        found = []
        for _, sequence, task_id in heapq.nlargest(limit, self._failures):
            for entry in _entries(self._tasks[task_id]):
                if entry[1] == sequence:
                    found.append(_event(task_id, entry))
        return found

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
            WorkerStatus.judged(heartbeat, stale_after, moment)
            for heartbeat in sorted(self._workers.values(), key=lambda beat: beat.worker)
        ]
