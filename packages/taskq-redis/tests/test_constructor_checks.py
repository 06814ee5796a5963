"""The Redis parts refuse counts that make no sense when they are made, naming the argument."""

from __future__ import annotations

import math
from typing import Any

import pytest

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
