"""`SQLiteUniqueStore`: one holder per key, across the processes of one host."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from taskq.exceptions import ResultBackendError
from taskq.testing import eventually
from taskq_inmemory import InMemoryBroker
from taskq_result_backends import ResultStoreUnavailableError, SQLiteUniqueStore
from taskq_result_backends.sqlite_unique import UNIQUE_KEYS


@pytest.fixture
async def store(sqlite_path: str):
    store = SQLiteUniqueStore(sqlite_path)
    yield store
    await store.shutdown()


async def test_a_key_is_held_by_one_task_until_released(store: SQLiteUniqueStore):
    assert await store.claim("k", "a", 60) is None
    assert await store.claim("k", "b", 60) == "a"
    await store.release("k", "b")  # not the holder: nothing happens
    assert await store.claim("k", "b", 60) == "a"
    await store.release("k", "a")
    assert await store.claim("k", "b", 60) is None


async def test_an_expired_key_goes_to_the_next_claim(store: SQLiteUniqueStore):
    assert await store.claim("k", "a", 0.05) is None
    await eventually(lambda: _claimed(store, "k", "b"), timeout=10)
    assert await store.claim("k", "c", 60) == "b"


async def _claimed(store: SQLiteUniqueStore, key: str, task_id: str) -> bool:
    return await store.claim(key, task_id, 60) is None


async def test_a_bad_path_is_a_typed_error(tmp_path):
    store = SQLiteUniqueStore(tmp_path / "missing" / "unique.sqlite3")
    with pytest.raises(ResultStoreUnavailableError):
        await store.claim("k", "a", 60)


async def test_a_unique_kiq_through_the_store_sends_once(sqlite_path: str):
    broker = InMemoryBroker(max_stored_results=-1).with_unique_store(SQLiteUniqueStore(sqlite_path))
    gate = asyncio.Event()

    @broker.task
    async def job(n: int) -> int:
        await gate.wait()
        return n

    async with broker:
        first = await job.kicker().with_unique().kiq(1)
        again = await job.kicker().with_unique().kiq(1)
        assert again.task_id == first.task_id
        gate.set()
        assert (await first.wait_result(timeout=10)).return_value == 1
        next_one = await eventually(lambda: job.kicker().with_unique().kiq(1))
        assert next_one.task_id != first.task_id


_CLAIMER = """
import asyncio, sys
from taskq_result_backends import SQLiteUniqueStore

async def main(path, who):
    store = SQLiteUniqueStore(path)
    won = [await store.claim("k", f"{who}-{n}", 60) for n in range(50)]
    await store.shutdown()
    print(sum(holder is None for holder in won))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_of_8_processes_claiming_one_key_at_once_one_gets_it(sqlite_path: str):
    claimers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_CLAIMER), sqlite_path, str(n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    wins = [int(claimer.communicate(timeout=120)[0]) for claimer in claimers]
    assert sum(wins) == 1


# a 5 MB key was a 5 MB row and index entry in the file, until its task ended or its TTL
async def test_a_long_key_is_stored_as_a_digest(store: SQLiteUniqueStore, sqlite_path: str):
    start = "k" * 5_000_000
    assert await store.claim(start + "1", "a", 60) is None
    assert await store.claim(start + "2", "b", 60) is None
    assert await store.claim(start + "1", "c", 60) == "a"
    await store.release(start + "1", "a")
    assert await store.claim(start + "1", "c", 60) is None
    with sqlite3.connect(sqlite_path) as connection:
        (longest,) = connection.execute(f"SELECT max(length(key)) FROM {UNIQUE_KEYS}").fetchone()
    assert longest < 100, longest


def remove_database(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


async def test_a_store_whose_file_is_removed_claims_in_the_new_file(sqlite_path: str):
    # a connection on a removed file kept its own copy of the keys: a key claimed in the new
    # file by another process was held twice
    first = SQLiteUniqueStore(sqlite_path)
    second = SQLiteUniqueStore(sqlite_path)
    try:
        assert await first.claim("k", "a", 60) is None
        remove_database(sqlite_path)
        assert await second.claim("k", "b", 60) is None
        assert await first.claim("k", "c", 60) == "b"
    finally:
        await first.shutdown()
        await second.shutdown()


async def test_a_key_that_is_not_valid_unicode_is_a_result_backend_error(store: SQLiteUniqueStore):
    with pytest.raises(ResultBackendError, match="not valid Unicode"):
        await store.claim("k\udc80", "a", 60)
    assert await store.claim("k", "a", 60) is None  # no transaction was left open
