"""`InMemoryEventStore`: task events and heartbeats in the memory of one process."""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from taskq.abc.event_store import DEFAULT_FAILURES, AsyncEventStore
from taskq.task_events import (
    LATEST_TASKS,
    EventKind,
    MinuteRate,
    Retention,
    TaskEvent,
    TaskPage,
    TaskQuery,
    TaskSummary,
    WorkerHeartbeat,
    WorkerStatus,
    last_minutes,
    minute_of,
    page_cursor,
    read_cursor,
)


@dataclass
class _Task:
    """A task's retained events as (time, sequence, event), in order, and its summary.

    ``created`` is the sequence of its first event written: older entries elsewhere (a
    failure) belong to an earlier, dropped task of the same id.
    """

    created: int
    events: list[tuple[float, int, TaskEvent]] = field(default_factory=list)
    summary: TaskSummary | None = None


def summarize(task: TaskSummary | None, event: TaskEvent, is_latest: bool) -> TaskSummary:
    """The summary of a task after ``event`` (the task's latest one when ``is_latest``)."""
    first_time = event.time if task is None else min(task.first_time, event.time)
    if task is not None and not is_latest:
        return dataclasses.replace(task, first_time=first_time)
    return TaskSummary(
        task_id=event.task_id,
        task_name=event.task_name,
        state=event.kind,
        worker=event.worker,
        first_time=first_time,
        last_time=event.time,
        duration=event.duration,
        error_type=event.error_type,
        error_message=event.error_message,
    )


class InMemoryEventStore(AsyncEventStore):
    """Keeps events in this process only: for tests, and for a worker and client in one process.

    Nothing crosses processes (``Capability.CROSS_PROCESS`` is not declared): a worker pool
    needs the SQLite or Redis store.
    """

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self._sequence = itertools.count()
        self._tasks: dict[str, _Task] = {}
        self._total = 0
        # (last time, last sequence, task id) of every task's latest event; stale entries are
        # skipped when popped.
        self._by_age: list[tuple[float, int, str]] = []
        self._failures: list[tuple[float, int, TaskEvent]] = []
        self._rates: dict[int, Counter[EventKind]] = {}
        self._minutes: list[int] = []  # the keys of _rates, as a heap
        self._workers: dict[str, WorkerHeartbeat] = {}

    async def write(
        self, events: Sequence[TaskEvent], heartbeats: Sequence[WorkerHeartbeat] = ()
    ) -> None:
        """Record the batch, then drop what the retention no longer allows."""
        for event in events:
            self._add(event)
        for heartbeat in heartbeats:
            known = self._workers.get(str(heartbeat.worker))
            if known is None or known.time <= heartbeat.time:
                self._workers[str(heartbeat.worker)] = heartbeat
        self._retain(time.time())

    def _add(self, event: TaskEvent) -> None:
        sequence = next(self._sequence)
        task = self._tasks.get(event.task_id)
        if task is None:
            task = self._tasks[event.task_id] = _Task(created=sequence)
        entry = (event.time, sequence, event)
        bisect.insort(task.events, entry, key=lambda item: item[:2])
        is_latest = task.events[-1] is entry
        task.summary = summarize(task.summary, event, is_latest)
        if is_latest:
            heapq.heappush(self._by_age, (event.time, sequence, event.task_id))
        if event.kind is EventKind.FAILED:
            self._failures.append(entry)
        minute = minute_of(event.time)
        if minute not in self._rates:
            self._rates[minute] = Counter()
            heapq.heappush(self._minutes, minute)
        self._rates[minute][event.kind] += 1
        self._total += 1

    def _retain(self, now: float) -> None:
        oldest_allowed = now - self.retention.max_age
        dropped = False
        while self._by_age:
            last_time, sequence, task_id = self._by_age[0]
            task = self._tasks.get(task_id)
            if task is None or task.events[-1][:2] != (last_time, sequence):
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

    def _retained(self, entry: tuple[float, int, TaskEvent]) -> bool:
        task = self._tasks.get(entry[2].task_id)
        return task is not None and task.created <= entry[1]

    async def task_events(self, task_id: str) -> list[TaskEvent]:
        """Every retained event of ``task_id``, in order."""
        task = self._tasks.get(task_id)
        return [] if task is None else [event for _, _, event in task.events]

    async def tasks(self, query: TaskQuery = LATEST_TASKS) -> TaskPage:
        """The matching tasks, latest first, one page of them."""
        after = None if query.cursor is None else read_cursor(query.cursor)
        found = sorted(
            (task.summary for task in self._tasks.values() if task.summary is not None),
            key=lambda summary: (summary.last_time, summary.task_id),
            reverse=True,
        )
        page: list[TaskSummary] = []
        for summary in found:
            if after is not None and (summary.last_time, summary.task_id) >= after:
                continue
            if query.matches(summary):
                if len(page) == query.limit:
                    return TaskPage(page, page_cursor(page[-1]))
                page.append(summary)
        return TaskPage(page)

    async def failures(self, limit: int = DEFAULT_FAILURES) -> list[TaskEvent]:
        """The latest ``failed`` events, newest first."""
        latest = heapq.nlargest(limit, self._failures, key=lambda item: item[:2])
        return [event for _, _, event in latest]

    async def rates(self, minutes: int, now: float | None = None) -> list[MinuteRate]:
        """Event counts per minute for the last ``minutes`` minutes, oldest first."""
        starts = last_minutes(minutes, time.time() if now is None else now)
        return [MinuteRate(start, dict(self._rates.get(start, {}))) for start in starts]

    async def workers(self, stale_after: float, now: float | None = None) -> list[WorkerStatus]:
        """Each retained worker's latest heartbeat, ordered by worker id."""
        moment = time.time() if now is None else now
        return [
            WorkerStatus(heartbeat, moment - heartbeat.time <= stale_after)
            for heartbeat in sorted(self._workers.values(), key=lambda beat: beat.worker)
        ]
