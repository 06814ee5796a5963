"""SQLiteCancellationStore: records with a TTL, listeners that poll, and other processes."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest

from taskq import Cancellation, Capability
from taskq.testing import eventually
from taskq_result_backends import SQLiteCancellationStore, SQLiteResultBackend
from taskq_result_backends.errors import ResultStoreUnavailableError


@pytest.fixture
async def store(tmp_path: Path):
    made = SQLiteCancellationStore(tmp_path / "cancellations.sqlite3", poll_interval_s=0.05)
    await made.startup()
    yield made
    await made.shutdown()


async def test_a_cancellation_is_recorded_with_its_reason(store):
    assert await store.cancellation("t1") is None
    await store.cancel("t1", "no longer needed")
    assert await store.cancellation("t1") == Cancellation("t1", "no longer needed")
    assert Capability.CROSS_PROCESS in store.capabilities


async def test_a_cancellation_expires_after_its_ttl_and_is_purged(store):
    store.ttl_s = 0.05
    await store.cancel("old")

    async def expired() -> bool:
        return await store.cancellation("old") is None

    await eventually(expired)
    store.ttl_s = 60
    await store.cancel("new")
    with closing(sqlite3.connect(store.path)) as connection:
        ids = [row[0] for row in connection.execute("SELECT task_id FROM taskq_cancellations")]
    assert ids == ["new"]


async def test_a_listener_gets_what_is_written_after_it_started(store):
    await store.cancel("before")
    feed = await store.listen()
    await store.cancel("after", "r")
    await store.cancel("before", "again")  # written again: a new row, seen again
    got = [await asyncio.wait_for(feed.__anext__(), 10) for _ in range(2)]
    assert got == [Cancellation("after", "r"), Cancellation("before", "again")]
    await feed.aclose()


async def test_a_listener_sees_a_cancellation_written_by_another_process(store):
    feed = await store.listen()
    script = textwrap.dedent(
        """
        import asyncio, sys
        from taskq_result_backends import SQLiteCancellationStore

        async def main():
            store = SQLiteCancellationStore(sys.argv[1])
            await store.cancel("from-child", "elsewhere")
            await store.shutdown()

        asyncio.run(main())
        """
    )
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script, store.path)
    assert await asyncio.wait_for(child.wait(), 60) == 0
    assert await asyncio.wait_for(feed.__anext__(), 10) == Cancellation("from-child", "elsewhere")
    await feed.aclose()


async def test_it_can_share_the_result_backends_file(tmp_path: Path):
    path = tmp_path / "shared.sqlite3"
    backend, store = SQLiteResultBackend(path), SQLiteCancellationStore(path)
    await backend.startup()
    await store.startup()
    await store.cancel("t1")
    assert await store.cancellation("t1") is not None
    assert not await backend.is_result_ready("t1")
    await store.shutdown()
    await backend.shutdown()


async def test_a_path_that_cannot_be_opened_fails_at_startup(tmp_path: Path):
    store = SQLiteCancellationStore(tmp_path / "missing" / "c.sqlite3")
    with pytest.raises(ResultStoreUnavailableError, match="SQLite cancellation database"):
        await store.startup()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="ttl_s"):
        SQLiteCancellationStore(ttl_s=-1)
    with pytest.raises(ValueError, match="poll_interval_s"):
        SQLiteCancellationStore(poll_interval_s=0)
