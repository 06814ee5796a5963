"""The Redis parts refuse counts that make no sense when they are made, naming the argument."""

from __future__ import annotations

import math
from typing import Any

import pytest

from taskq.exceptions import EventStoreError
from taskq.task_events import Retention
from taskq_redis import RedisEventStore, RedisStreamBroker, RedisUniqueStore
from taskq_redis.cancellation import RedisCancellationStore
from taskq_redis.limiter import RedisLimiter

NOT_COUNTS = [math.inf, math.nan, 0, -1, 1.5]


@pytest.mark.parametrize("value", NOT_COUNTS)
@pytest.mark.parametrize(
    ("name", "alternative"),
    [("batch_size", ""), ("max_deliveries", ", or None"), ("max_stream_length", ", or None")],
)
def test_the_broker_refuses_counts_that_are_not_positive_integers(
    name: str, alternative: str, value: Any
) -> None:
    with pytest.raises(
        ValueError, match=rf"^{name} must be an integer of at least 1{alternative}, got "
    ):
        RedisStreamBroker(**{name: value})


@pytest.mark.parametrize("value", [*NOT_COUNTS, 1])
@pytest.mark.parametrize(
    "make",
    [RedisStreamBroker, RedisEventStore, RedisLimiter, RedisCancellationStore, RedisUniqueStore],
)
def test_max_connections_is_an_integer_of_at_least_two(make: Any, value: Any) -> None:
    with pytest.raises(
        ValueError, match=r"^max_connections must be an integer of at least 2, or None, got "
    ):
        make(max_connections=value)


@pytest.mark.parametrize("max_age", [1e300, 1e17, 9.3e15, 9_000_000_000_000_002.0])
def test_the_event_store_refuses_a_max_age_redis_cannot_expire_keys_after(max_age: float) -> None:
    with pytest.raises(
        EventStoreError,
        match=r"^retention: max_age must be a finite number of seconds greater than 0 and at "
        r"most 9e\+15, got ",
    ):
        RedisEventStore(retention=Retention(max_age=max_age))
