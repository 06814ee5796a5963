"""SQLiteEventStore beyond the conformance suite: a bad path, reopening, a shared file."""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
from pathlib import Path

import pytest

from taskq import sqlite_file
from taskq.event_recorder import EventRecorder
from taskq.event_stores import SQLiteEventStore
from taskq.exceptions import EventStoreError
from taskq.task_events import (
    EventKind,
    Retention,
    TaskEvent,
    TaskQuery,
    WorkerHeartbeat,
    WorkerId,
)
from taskq.testing import eventually

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


async def test_a_batch_with_text_sqlite_cannot_encode_is_recorded_escaped_not_retried_forever(
    tmp_path: Path,
) -> None:
    store = SQLiteEventStore(tmp_path / "events.db")
    recorder = EventRecorder(store, WORKER, flush_interval_s=0.01)
    recorder.start()
    try:
        try:  # a file name that is not UTF-8, decoded with surrogateescape, as os.listdir does
            open(tmp_path / "report-\udcff.csv")  # noqa: ASYNC230, SIM115
        except OSError as error:
            recorder.record_error(EventKind.FAILED, "t-file", "app:load", error)
        recorder.record(EventKind.RECEIVED, "t-\ud800", "app:load")  # a task id read from JSON
        recorder.record(EventKind.SUCCEEDED, "t-next", "app:load", duration=0.1)
        await eventually(lambda: store.task_events("t-next"), what="the later event stored")
        (failed,) = await store.task_events("t-file")
        assert failed.error_message is not None
        assert "report-\\udcff.csv" in failed.error_message
        assert [event.kind for event in await store.task_events("t-\\ud800")] == [
            EventKind.RECEIVED
        ]
    finally:
        await recorder.close()
        await store.shutdown()


async def test_queries_sqlite_cannot_run_raise_the_event_store_error(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "events.db")
    try:
        for query in (
            store.task_events("t-\ud800"),
            store.tasks(TaskQuery(name="app:\ud800")),
            store.tasks(TaskQuery(limit=2**63)),
            store.failures(2**63),
        ):
            with pytest.raises(EventStoreError):
                await query
        assert await store.rates(0) == []
    finally:
        await store.shutdown()


async def test_an_event_whose_time_is_not_a_number_does_not_stop_the_recording(
    tmp_path: Path,
) -> None:
    store = SQLiteEventStore(tmp_path / "events.db")
    recorder = EventRecorder(store, WORKER, flush_interval_s=0.01)
    recorder.start()
    try:
        recorder.record(EventKind.RETRIED, "t-clock", "app:x", at=math.nan, retry=1)
        recorder.record(EventKind.SUCCEEDED, "t-next", "app:x", duration=0.1)
        await eventually(lambda: store.task_events("t-next"), what="the later event stored")
        (retried,) = await store.task_events("t-clock")
        assert math.isfinite(retried.time)
    finally:
        await recorder.close()
        await store.shutdown()


async def test_a_store_whose_file_is_removed_records_into_a_new_file_not_the_removed_one(
    tmp_path: Path,
) -> None:
    # an operator removes the file to start afresh: the worker's connection wrote on into the
    # removed file, where no reader could see its events or heartbeats again
    path = tmp_path / "events.db"
    worker = SQLiteEventStore(path)
    now = time.time()
    try:
        await worker.write([TaskEvent(EventKind.SUCCEEDED, "before", "app:x", WORKER, now)])
        for name in ("events.db", "events.db-wal", "events.db-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        await worker.write(
            [TaskEvent(EventKind.SUCCEEDED, "after", "app:x", WORKER, now)],
            [WorkerHeartbeat(WORKER, now, now, "B", "q", 1, 0, 1, 0, "0")],
        )
    finally:
        await worker.shutdown()
    reader = SQLiteEventStore(path)
    try:
        assert [event.task_id for event in await reader.task_events("after")] == ["after"]
        assert await reader.task_events("before") == []
        assert len(await reader.workers(stale_after=60)) == 1
    finally:
        await reader.shutdown()


def file_size(path: Path) -> int:
    return path.stat().st_size


async def test_the_wal_file_is_cut_back_after_a_long_read_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a reader holding a read transaction keeps the WAL from being checkpointed: it grows,
    # and SQLite kept that size on disk as long as any process had the file open
    monkeypatch.setattr(sqlite_file, "WAL_SIZE_LIMIT_BYTES", 64 * 1024)
    path = tmp_path / "events.db"
    wal = tmp_path / "events.db-wal"
    store = SQLiteEventStore(path)
    now = time.time()
    try:
        await store.startup()
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM taskq_events").fetchone()
            for number in range(100):
                batch = [
                    TaskEvent(EventKind.SUCCEEDED, f"t{number}-{i}", "app:x", WORKER, now)
                    for i in range(50)
                ]
                await store.write(batch)
            grown = file_size(wal)
            reader.execute("COMMIT")
        sizes = []
        for number in range(50):  # the next write checkpoints, a later one starts the WAL anew
            await store.write([TaskEvent(EventKind.SUCCEEDED, f"l{number}", "app:x", WORKER, now)])
            sizes.append(file_size(wal))  # while open: closing the last connection removes it
    finally:
        await store.shutdown()
    assert grown > 4 * 1024 * 1024
    assert min(sizes) <= 64 * 1024


def checkpointed_size(path: Path) -> int:
    """The database file's size once its WAL is written back into it."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return file_size(path)


async def test_the_file_shrinks_once_the_retention_dropped_most_events(tmp_path: Path) -> None:
    # the file kept its largest size for ever: freed pages were only reused
    path = tmp_path / "events.db"
    filler = SQLiteEventStore(path)
    now = time.time()
    for batch in range(20):
        await filler.write(
            [
                TaskEvent(
                    EventKind.FAILED, f"t{batch}-{i}", "app:x", WORKER, now, error_message="x" * 500
                )
                for i in range(1000)
            ]
        )
    await filler.shutdown()
    full = checkpointed_size(path)
    assert full > 10_000_000
    store = SQLiteEventStore(path, Retention(max_events=10))
    written = 0

    async def dropped_and_shrunk() -> bool:  # each write drops the oldest tasks, then shrinks
        nonlocal written
        await store.write([TaskEvent(EventKind.SUCCEEDED, f"new-{written}", "app:x", WORKER, now)])
        written += 1
        return checkpointed_size(path) < full / 10

    try:
        await eventually(dropped_and_shrunk, what="the old events dropped and the file shrunk")
        assert len((await store.tasks(TaskQuery(limit=100))).tasks) <= 10
    finally:
        await store.shutdown()
