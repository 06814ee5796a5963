"""The result backends and stores refuse times that make no sense when they are made."""

from __future__ import annotations

import math
from typing import Any

import pytest

from taskq_result_backends import SQLiteResultBackend
from taskq_result_backends.sqlite_cancellation import SQLiteCancellationStore
from taskq_result_backends.sqlite_unique import SQLiteUniqueStore

NOT_SECONDS = [math.inf, math.nan, 0, -1]


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
        ValueError, match=rf"^{name} must be a finite number of seconds greater than 0, got "
    ):
        make(tmp_path / "store.sqlite3", **{name: value})


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
