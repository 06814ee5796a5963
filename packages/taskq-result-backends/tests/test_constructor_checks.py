"""The result backends and stores refuse times that make no sense when they are made."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from typing import Any

import pytest

from taskq.result import TaskiqResult
from taskq.toolkit import MAX_INT32_MS_S
from taskq_result_backends import SQLiteResultBackend
from taskq_result_backends.sqlite_cancellation import SQLiteCancellationStore
from taskq_result_backends.sqlite_unique import SQLiteUniqueStore

NOT_SECONDS = [math.inf, math.nan, 0, -1]
#: Seconds a C int of milliseconds cannot hold (SQLite read them as no wait at all).
TOO_LONG_FOR_INT32_MS = [1e300, 1e12, 2**31 / 1000 + 1, 2_147_483.648]
SQLITE_STORES = [SQLiteResultBackend, SQLiteCancellationStore, SQLiteUniqueStore]


@pytest.mark.parametrize("value", NOT_SECONDS)
@pytest.mark.parametrize(
    ("make", "name"),
    [
        (SQLiteResultBackend, "busy_timeout_s"),
        (SQLiteResultBackend, "purge_interval_s"),
        (SQLiteCancellationStore, "busy_timeout_s"),
        (SQLiteCancellationStore, "poll_interval_s"),
        (SQLiteUniqueStore, "busy_timeout_s"),
    ],
)
def test_sqlite_stores_refuse_seconds_that_are_not_finite_and_positive(
    make: Any, name: str, value: float, tmp_path: Any
) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^{name} must be a finite number of seconds greater than 0"
        r"( and at most \S+)?, got ",
    ):
        make(tmp_path / "store.sqlite3", **{name: value})


@pytest.mark.parametrize("value", TOO_LONG_FOR_INT32_MS)
@pytest.mark.parametrize("make", SQLITE_STORES)
def test_sqlite_stores_refuse_a_busy_timeout_sqlite_cannot_hold(
    make: Any, value: float, tmp_path: Any
) -> None:
    with pytest.raises(
        ValueError,
        match=r"^busy_timeout_s must be a finite number of seconds greater than 0 and at most "
        r"2147483\.647, got ",
    ):
        make(tmp_path / "store.sqlite3", busy_timeout_s=value)


async def test_the_longest_busy_timeout_makes_a_write_wait_for_the_lock(tmp_path: Any) -> None:
    path = tmp_path / "results.sqlite3"
    backend: SQLiteResultBackend[int] = SQLiteResultBackend(path, busy_timeout_s=MAX_INT32_MS_S)
    await backend.startup()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock until the COMMIT below
    asyncio.get_running_loop().call_later(0.2, other.execute, "COMMIT")
    try:
        await backend.set_result("t1", TaskiqResult(is_err=False, return_value=1, execution_time=0))
        assert (await backend.get_result("t1")).return_value == 1
    finally:
        other.close()
        await backend.shutdown()


@pytest.mark.parametrize(
    ("name", "value", "least"),
    [
        ("reconnect_max_delay_s", math.inf, "greater than 0"),
        ("reconnect_max_delay_s", math.nan, "greater than 0"),
        ("reconnect_max_delay_s", 0, "greater than 0"),
        ("reconnect_timeout_s", math.inf, "0 or more"),
        ("reconnect_timeout_s", math.nan, "0 or more"),
        ("reconnect_timeout_s", -1, "0 or more"),
    ],
)
def test_the_redis_backend_refuses_reconnect_times_that_make_no_sense(
    name: str, value: float, least: str
) -> None:
    redis_backend = pytest.importorskip("taskq_result_backends.redis")
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number of seconds {least}"):
        redis_backend.RedisResultBackend(**{name: value})
