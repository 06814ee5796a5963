"""`SQLiteEventStore`: task events and heartbeats in a SQLite file shared on one host."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from taskq.abc.event_store import DEFAULT_FAILURES, AsyncEventStore
from taskq.capabilities import Capability
from taskq.exceptions import EventStoreError
from taskq.sqlite_file import SQLiteFile, give_back_free_pages
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
    WorkerId,
    WorkerStatus,
    bounded_events,
    bounded_heartbeats,
    check_times,
    last_minutes,
    minute_of,
    page_cursor,
    read_cursor,
    reading,
    stored_task_id,
)

#: Default database file, relative to the working directory.
DEFAULT_PATH = "taskq-events.sqlite3"
#: Seconds a write waits for another process's write lock before giving up.
DEFAULT_BUSY_TIMEOUT_S = 10.0
#: Tasks one retention pass reads at a time while looking for the oldest.
RETENTION_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS taskq_events (
    seq INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    time REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS taskq_events_by_task ON taskq_events (task_id, time, seq);
CREATE INDEX IF NOT EXISTS taskq_events_failed ON taskq_events (time, seq) WHERE kind = 'failed';
CREATE TABLE IF NOT EXISTS taskq_tasks (
    task_id TEXT PRIMARY KEY NOT NULL,
    task_name TEXT NOT NULL,
    state TEXT NOT NULL,
    worker TEXT NOT NULL,
    first_time REAL NOT NULL,
    last_time REAL NOT NULL,
    events INTEGER NOT NULL,
    duration REAL,
    error_type TEXT,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS taskq_tasks_latest ON taskq_tasks (last_time, task_id);
CREATE INDEX IF NOT EXISTS taskq_tasks_by_state ON taskq_tasks (state, last_time, task_id);
CREATE INDEX IF NOT EXISTS taskq_tasks_by_name ON taskq_tasks (task_name, last_time, task_id);
CREATE INDEX IF NOT EXISTS taskq_tasks_by_worker ON taskq_tasks (worker, last_time, task_id);
CREATE TABLE IF NOT EXISTS taskq_minutes (
    minute INTEGER NOT NULL,
    kind TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (minute, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS taskq_workers (
    worker TEXT PRIMARY KEY NOT NULL,
    time REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS taskq_event_count (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    events INTEGER NOT NULL
);
INSERT OR IGNORE INTO taskq_event_count (id, events) VALUES (0, 0);
"""

# The latest event (by time; a tie goes to the later write) sets every field but first_time.
_LATEST_FIELDS = ", ".join(
    f"{column} = CASE WHEN excluded.last_time >= taskq_tasks.last_time"
    f" THEN excluded.{column} ELSE taskq_tasks.{column} END"
    for column in (
        "task_name",
        "state",
        "worker",
        "duration",
        "error_type",
        "error_message",
        "last_time",
    )
)
_UPSERT_TASK = (
    "INSERT INTO taskq_tasks (task_id, task_name, state, worker, first_time, last_time, events,"
    " duration, error_type, error_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (task_id) DO UPDATE SET events = taskq_tasks.events + excluded.events,"
    f" first_time = min(taskq_tasks.first_time, excluded.first_time), {_LATEST_FIELDS}"
)
_TASK_COLUMNS = (
    "task_id, task_name, state, worker, first_time, last_time, duration, error_type, error_message"
)


class SQLiteEventStore(AsyncEventStore):
    """Keeps events in a SQLite file with the standard library only: the embedded default.

    Every process on the host that opens the same file shares the events (workers, clients,
    ``taskq status``). The file runs in WAL mode, so readers never wait for a writer; each
    batch is one transaction, so several writer processes take turns on the write lock
    (waiting up to ``busy_timeout_s``). Each store holds one connection used from a thread
    of its own, so the event loop never waits for the disk.

    Args:
        path: The database file, created with its tables on first use.
        retention: The bounds on what is kept (default `Retention()`).
        busy_timeout_s: Seconds a write waits for the lock before `EventStoreError`, at most
            2,147,483.647 (SQLite counts it in milliseconds in a C int).

    Raises:
        ValueError: ``busy_timeout_s`` is not a finite number of seconds above 0 and at most
            2,147,483.647.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CROSS_PROCESS})

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_PATH,
        retention: Retention | None = None,
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        self.path = os.fspath(path)
        self.retention = retention or Retention()
        self._file = SQLiteFile(
            self.path, busy_timeout_s, _SCHEMA, "the SQLite event store", _store_error
        )

    @property
    def busy_timeout_s(self) -> float:
        """Seconds a write waits for another process's write lock."""
        return self._file.busy_timeout_s

    async def startup(self) -> None:
        """Open the file and create the tables; a bad path fails here."""
        await self._file.run(lambda connection: None)

    async def shutdown(self) -> None:
        """Close the connection and stop its thread; the store reopens on its next use."""
        await self._file.close()

    async def write(
        self, events: Sequence[TaskEvent], heartbeats: Sequence[WorkerHeartbeat] = ()
    ) -> None:
        """Record the batch in one transaction, then apply the retention in the same one."""
        check_times((event.time for event in events), heartbeats)
        events = bounded_events(events)
        heartbeats = bounded_heartbeats(heartbeats)
        rows = [_event_row(event) for event in events]
        tasks = _task_rows(events)
        minutes = Counter((minute_of(event.time), event.kind.value) for event in events)
        beats = [(str(beat.worker), beat.time, _json(beat.as_dict())) for beat in heartbeats]

        def write(connection: sqlite3.Connection) -> None:
            with _transaction(connection):
                connection.executemany(
                    "INSERT INTO taskq_events (task_id, kind, time, data) VALUES (?, ?, ?, ?)",
                    rows,
                )
                connection.executemany(_UPSERT_TASK, tasks)
                connection.executemany(
                    "INSERT INTO taskq_minutes (minute, kind, count) VALUES (?, ?, ?)"
                    " ON CONFLICT (minute, kind) DO UPDATE SET count = count + excluded.count",
                    [(minute, kind, count) for (minute, kind), count in minutes.items()],
                )
                connection.executemany(
                    "INSERT INTO taskq_workers (worker, time, data) VALUES (?, ?, ?)"
                    " ON CONFLICT (worker) DO UPDATE SET time = excluded.time, data = excluded.data"
                    " WHERE excluded.time >= taskq_workers.time",
                    beats,
                )
                connection.execute(
                    "UPDATE taskq_event_count SET events = events + ? WHERE id = 0", (len(rows),)
                )
                dropped = self._retain(connection, time.time())
            if dropped:
                give_back_free_pages(connection)

        await self._file.run(write)

    def _retain(self, connection: sqlite3.Connection, now: float) -> bool:
        """Delete the oldest tasks past the retention; say whether any went."""
        oldest_allowed = now - self.retention.max_age
        (total,) = connection.execute("SELECT events FROM taskq_event_count").fetchone()
        dropped: list[str] = []
        excess = total - self.retention.max_events
        cursor = connection.execute(
            "SELECT task_id, last_time, events FROM taskq_tasks ORDER BY last_time, task_id"
        )
        while rows := cursor.fetchmany(RETENTION_CHUNK):
            for task_id, last_time, count in rows:
                if excess <= 0 and last_time >= oldest_allowed:
                    break
                dropped.append(task_id)
                excess -= count
            else:
                continue
            break
        cursor.close()
        for start in range(0, len(dropped), RETENTION_CHUNK):
            chunk = dropped[start : start + RETENTION_CHUNK]
            marks = ", ".join("?" * len(chunk))
            connection.execute(f"DELETE FROM taskq_events WHERE task_id IN ({marks})", chunk)
            connection.execute(f"DELETE FROM taskq_tasks WHERE task_id IN ({marks})", chunk)
        if dropped:
            connection.execute(
                "UPDATE taskq_event_count SET events = ? WHERE id = 0",
                (self.retention.max_events + excess,),
            )
        connection.execute("DELETE FROM taskq_minutes WHERE minute <= ?", (oldest_allowed - 60,))
        connection.execute("DELETE FROM taskq_workers WHERE time < ?", (oldest_allowed,))
        return bool(dropped)

    async def task_events(self, task_id: str) -> list[TaskEvent]:
        """Every retained event of ``task_id`` (its whole id or the one kept), by time."""
        rows = await self._read(
            "SELECT data FROM taskq_events WHERE task_id = ? ORDER BY time, seq",
            (stored_task_id(task_id),),
        )
        with reading(f"an event of task {task_id!r} in {self.path!r}"):
            return [TaskEvent.from_dict(json.loads(data)) for (data,) in rows]

    async def tasks(self, query: TaskQuery = LATEST_TASKS) -> TaskPage:
        """The matching tasks, latest first, one page of them."""
        where, parameters = _task_filters(query)
        rows = await self._read(
            f"SELECT {_TASK_COLUMNS} FROM taskq_tasks {where}"
            " ORDER BY last_time DESC, task_id DESC LIMIT ?",
            (*parameters, query.limit + 1),
        )
        with reading(f"a task in {self.path!r}"):
            page = [_summary(row) for row in rows[: query.limit]]
        return TaskPage(page, page_cursor(page[-1]) if len(rows) > query.limit else None)

    async def failures(self, limit: int = DEFAULT_FAILURES) -> list[TaskEvent]:
        """The latest ``failed`` events, newest first."""
        rows = await self._read(
            "SELECT data FROM taskq_events WHERE kind = 'failed'"
            " ORDER BY time DESC, seq DESC LIMIT ?",
            (limit,),
        )
        with reading(f"a failed event in {self.path!r}"):
            return [TaskEvent.from_dict(json.loads(data)) for (data,) in rows]

    async def rates(self, minutes: int, now: float | None = None) -> list[MinuteRate]:
        """Event counts per minute for the last ``minutes`` minutes, oldest first."""
        starts = last_minutes(minutes, time.time() if now is None else now)
        if not starts:
            return []
        rows = await self._read(
            "SELECT minute, kind, count FROM taskq_minutes WHERE minute BETWEEN ? AND ?",
            (starts[0], starts[-1]),
        )
        counts: dict[int, dict[EventKind, int]] = {start: {} for start in starts}
        with reading(f"an event count in {self.path!r}"):
            for minute, kind, count in rows:
                counts[minute][EventKind(kind)] = int(count)
        return [MinuteRate(start, counts[start]) for start in starts]

    async def workers(self, stale_after: float, now: float | None = None) -> list[WorkerStatus]:
        """Each retained worker's latest heartbeat, ordered by worker id."""
        moment = time.time() if now is None else now
        rows = await self._read("SELECT data FROM taskq_workers", ())
        with reading(f"a heartbeat in {self.path!r}"):
            beats = sorted(
                (WorkerHeartbeat.from_dict(json.loads(data)) for (data,) in rows),
                key=lambda beat: beat.worker,
            )
        return [WorkerStatus.judged(beat, stale_after, moment) for beat in beats]

    # -- the connection's thread -------------------------------------------------------------

    async def _read(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        return await self._file.run(
            lambda connection: connection.execute(sql, parameters).fetchall()
        )


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` to ``COMMIT`` (``ROLLBACK`` on error): one writer at a time."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _store_error(exc: Exception, file: SQLiteFile) -> EventStoreError:
    return EventStoreError(f"{file.what} {file.path!r} failed: {exc}")


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def _event_row(event: TaskEvent) -> tuple[str, str, float, str]:
    return (event.task_id, event.kind.value, event.time, _json(event.as_dict()))


def _task_rows(events: Sequence[TaskEvent]) -> list[tuple[Any, ...]]:
    """One upsert row per task of the batch: its latest event, first time and event count."""
    found: dict[str, tuple[TaskEvent, float, int]] = {}
    for event in events:
        known = found.get(event.task_id)
        if known is None:
            found[event.task_id] = (event, event.time, 1)
        else:
            latest, first_time, count = known
            if event.time >= latest.time:
                latest = event
            found[event.task_id] = (latest, min(first_time, event.time), count + 1)
    return [
        (
            task_id,
            latest.task_name,
            latest.kind.value,
            str(latest.worker),
            first_time,
            latest.time,
            count,
            latest.duration,
            latest.error_type,
            latest.error_message,
        )
        for task_id, (latest, first_time, count) in found.items()
    ]


def _task_filters(query: TaskQuery) -> tuple[str, list[Any]]:
    """The WHERE clause (with its parameters) of ``query``'s filters and cursor."""
    clauses: list[str] = []
    parameters: list[Any] = []
    for clause, value in (
        ("state = ?", None if query.state is None else query.state.value),
        ("task_name = ?", query.name),
        ("worker = ?", None if query.worker is None else str(query.worker)),
        ("last_time >= ?", query.since),
        ("last_time < ?", query.until),
    ):
        if value is not None:
            clauses.append(clause)
            parameters.append(value)
    if query.cursor is not None:
        clauses.append("(last_time, task_id) < (?, ?)")
        parameters.extend(read_cursor(query.cursor))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), parameters


def _summary(row: Sequence[Any]) -> TaskSummary:
    task_id, name, state, worker, first_time, last_time, duration, error_type, message = row
    return TaskSummary(
        task_id=task_id,
        task_name=name,
        state=EventKind(state),
        worker=WorkerId.parse(worker),
        first_time=first_time,
        last_time=last_time,
        duration=duration,
        error_type=error_type,
        error_message=message,
    )
