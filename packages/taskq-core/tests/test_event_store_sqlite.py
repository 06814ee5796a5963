"""SQLiteEventStore beyond the conformance suite: a bad path, reopening, a shared file."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import pytest

from taskq.event_stores import SQLiteEventStore
from taskq.exceptions import EventStoreError
from taskq.task_events import EventKind, TaskEvent, WorkerHeartbeat, WorkerId

WORKER = WorkerId("host", 1, 0)


async def test_a_file_that_cannot_be_opened_raises_the_event_store_error(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "missing" / "events.db")
    with pytest.raises(EventStoreError, match=r"events\.db"):
        await store.startup()
    await store.shutdown()


async def test_what_one_store_wrote_another_reads_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    writer = SQLiteEventStore(path)
    event = TaskEvent(EventKind.FAILED, "t1", "app:x", WORKER, time.time(), error_type="E")
    await writer.write([event])
    await writer.shutdown()
    reader = SQLiteEventStore(path)
    try:
        assert await reader.task_events("t1") == [event]
        assert await reader.failures() == [event]
    finally:
        await reader.shutdown()


@pytest.mark.parametrize(
    ("sql", "read"),
    [
        ("UPDATE taskq_events SET data = '{not json'", "task_events"),
        ("UPDATE taskq_tasks SET state = 'bogus'", "tasks"),
        ("UPDATE taskq_minutes SET kind = 'bogus'", "rates"),
        ("UPDATE taskq_events SET data = ''", "failures"),
        ("UPDATE taskq_events SET data = json_set(data, '$.time', 'noon')", "failures"),
        ("UPDATE taskq_events SET data = json_set(data, '$.error_type', 7)", "task_events"),
        ("UPDATE taskq_workers SET data = json_set(data, '$.time', 'yesterday')", "workers"),
        ("UPDATE taskq_workers SET data = 'nope'", "workers"),
    ],
)
async def test_rows_the_store_did_not_write_are_an_event_store_error(
    tmp_path: Path, sql: str, read: str
) -> None:
    # a file edited by hand: a typed error naming what is wrong, not a ValueError from inside
    path = tmp_path / "events.db"
    store = SQLiteEventStore(path)
    now = time.time()
    event = TaskEvent(EventKind.FAILED, "t1", "app:x", WORKER, now, error_type="E")
    beat = WorkerHeartbeat(WORKER, now, now, "B", "q", 1, 0, 0, 1, "0")
    await store.write([event], [beat])
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute(sql)
        connection.commit()
    calls = {
        "task_events": lambda: store.task_events("t1"),
        "tasks": lambda: store.tasks(),
        "workers": lambda: store.workers(stale_after=30),
        "rates": lambda: store.rates(2, now=now),
        "failures": lambda: store.failures(),
    }
    try:
        with pytest.raises(
            EventStoreError, match=r"not as taskq writes it|not a worker heartbeat|not a task event"
        ):
            await calls[read]()
    finally:
        await store.shutdown()
