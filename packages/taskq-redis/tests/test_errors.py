"""taskq_redis.errors: one family, one wording, redis-py's errors translated."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from taskq import BrokerError, SendTaskError, TaskiqError
from taskq_redis import RedisBrokerUnavailableError, RedisUnavailableError, SendUnavailableError
from taskq_redis.errors import translated, unavailable


def test_the_broker_errors_belong_to_the_family_and_stay_broker_errors() -> None:
    assert issubclass(RedisBrokerUnavailableError, RedisUnavailableError)
    assert issubclass(RedisBrokerUnavailableError, BrokerError)
    assert issubclass(SendUnavailableError, RedisBrokerUnavailableError)
    assert issubclass(SendUnavailableError, SendTaskError)


def test_one_wording() -> None:
    error = unavailable(SendUnavailableError, "send the task", "redis://h", OSError("x"), 2)
    assert str(error) == (
        "cannot send the task: Redis at redis://h did not answer for 2 s (x); check that it "
        "runs and that the URL is right"
    )


def test_redis_errors_are_translated() -> None:
    with (
        pytest.raises(RedisUnavailableError, match="cannot read: Redis at s does not answer"),
        translated("read", "s", RedisUnavailableError, TaskiqError),
    ):
        raise RedisConnectionError("down")
    with (
        pytest.raises(TaskiqError, match="cannot read: Redis at s answered an error: WRONGTYPE"),
        translated("read", "s", RedisUnavailableError, TaskiqError),
    ):
        raise ResponseError("WRONGTYPE")
