"""SQLiteEventStore beyond the conformance suite: a bad path, reopening, a shared file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from taskq.event_stores import SQLiteEventStore
from taskq.exceptions import EventStoreError
from taskq.task_events import EventKind, TaskEvent, WorkerId

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
