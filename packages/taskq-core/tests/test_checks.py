"""Numbers a constructor takes are checked where they are given: `taskq.checks` and its users."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from taskq import InMemoryBroker
from taskq.checks import MAX_INT32_MS_S, check_count, check_seconds
from taskq.event_recorder import EventRecorder
from taskq.event_stores import InMemoryEventStore, SQLiteEventStore
from taskq.exceptions import EventStoreError
from taskq.task_events import EventKind, Retention, TaskEvent, WorkerId

WORKER = WorkerId("host", 1, 0)
NOT_SECONDS = [math.inf, -math.inf, math.nan, 0, 0.0, -1, -0.5, True, "5", None]
NOT_COUNTS = [math.inf, math.nan, 0, -1, 1.5, 2.0, True, "5", None]


@pytest.mark.parametrize("value", NOT_SECONDS)
def test_seconds_are_a_finite_number_above_zero(value: Any) -> None:
    with pytest.raises(
        ValueError, match=r"^lease_s must be a finite number of seconds greater than 0"
    ):
        check_seconds("lease_s", value)


@pytest.mark.parametrize("value", [0.001, 1, 2.5, 86_400, 1e12, Fraction(1, 3)])
def test_seconds_give_back_what_they_were_given(value: float) -> None:
    assert check_seconds("lease_s", value) is value


def test_seconds_may_be_zero_or_bounded_and_the_message_says_so() -> None:
    assert check_seconds("timeout_s", 0, zero=True) == 0
    with pytest.raises(
        ValueError, match=r"^timeout_s must be a finite number of seconds 0 or more"
    ):
        check_seconds("timeout_s", -1e-9, zero=True)
    with pytest.raises(
        ValueError,
        match=r"^ttl must be a finite number of seconds greater than 0 and at most 60, or None, "
        r"got 61$",
    ):
        check_seconds("ttl", 61, maximum=60, alternative="or None")


@pytest.mark.parametrize("value", NOT_COUNTS)
def test_counts_are_integers_of_at_least_the_minimum(value: Any) -> None:
    with pytest.raises(ValueError, match=r"^batch_size must be an integer of at least 1, got "):
        check_count("batch_size", value)


def test_counts_may_start_at_zero_or_be_bounded() -> None:
    assert check_count("max_message_bytes", 0, minimum=0) == 0
    assert check_count("prefetch", 1000, maximum=1000) == 1000
    with pytest.raises(ValueError, match=r"^prefetch must be an integer from 1 to 1000, got 1001$"):
        check_count("prefetch", 1001, maximum=1000)


def _recorder(**options: Any) -> object:
    return EventRecorder(InMemoryEventStore(), **options)


def _with_event_store(**options: Any) -> object:
    return InMemoryBroker().with_event_store(InMemoryEventStore(), **options)


SECONDS: list[tuple[Callable[..., object], str]] = [
    (_recorder, "flush_interval_s"),
    (_recorder, "heartbeat_interval_s"),
    (SQLiteEventStore, "busy_timeout_s"),
]
COUNTS: list[tuple[Callable[..., object], str, int]] = [
    (_recorder, "max_buffered", 1),
    (_recorder, "batch_size", 1),
    (_recorder, "max_message_bytes", 0),
    (_with_event_store, "max_message_bytes", 0),
]


@pytest.mark.parametrize("value", [math.inf, math.nan, 0, -1])
@pytest.mark.parametrize(("make", "name"), SECONDS)
def test_core_refuses_seconds_that_make_no_sense(
    make: Callable[..., object], name: str, value: float
) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number of seconds"):
        make(**{name: value})


@pytest.mark.parametrize("value", [math.inf, math.nan, -1, 1.5])
@pytest.mark.parametrize(("make", "name", "minimum"), COUNTS)
def test_core_refuses_counts_that_make_no_sense(
    make: Callable[..., object], name: str, minimum: int, value: float
) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be an integer of at least {minimum}"):
        make(**{name: value})


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_events": math.inf}, "max_events"),
        ({"max_events": 1.5}, "max_events"),
        ({"max_events": 0}, "max_events"),
        ({"max_age": math.inf}, "max_age"),
        ({"max_age": math.nan}, "max_age"),
        ({"max_age": -1}, "max_age"),
    ],
)
def test_a_retention_that_makes_no_sense_is_an_event_store_error(
    options: dict[str, float], named: str
) -> None:
    with pytest.raises(EventStoreError, match=rf"retention: {named} must be "):
        Retention(**options)  # type: ignore[arg-type]


#: Seconds a C int of milliseconds cannot hold (SQLite read them as no wait at all).
TOO_LONG_FOR_INT32_MS = [1e300, 1e12, 2**31 / 1000 + 1, 2_147_483.648]


@pytest.mark.parametrize("value", TOO_LONG_FOR_INT32_MS)
def test_the_sqlite_event_store_refuses_a_busy_timeout_sqlite_cannot_hold(
    value: float, tmp_path: Path
) -> None:
    with pytest.raises(
        ValueError,
        match=r"^busy_timeout_s must be a finite number of seconds greater than 0 and at most "
        r"2147483\.647, got ",
    ):
        SQLiteEventStore(tmp_path / "events.sqlite3", busy_timeout_s=value)


async def test_the_longest_busy_timeout_makes_a_write_wait_for_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    store = SQLiteEventStore(path, busy_timeout_s=MAX_INT32_MS_S)
    await store.write([TaskEvent(EventKind.SENT, "t1", "f", WORKER, time.time())])
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock until the COMMIT below
    asyncio.get_running_loop().call_later(0.2, other.execute, "COMMIT")
    try:
        await store.write([TaskEvent(EventKind.SENT, "t2", "f", WORKER, time.time())])
        assert [event.task_id for event in await store.task_events("t2")] == ["t2"]
    finally:
        other.close()
        await store.shutdown()
