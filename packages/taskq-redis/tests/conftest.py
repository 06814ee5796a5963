"""Fixtures: the Redis server of the tests (skip without one, fail on CI) and fresh brokers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from taskq_redis import RedisStreamBroker
from taskq_redis.testing import own_redis_url, redis_prefix, redis_url

# the Redis server of the tests (skip without one, fail on CI), a key prefix per test, and a
# throwaway server of a test's own (for settings the shared one must keep)
__all__ = ["own_redis_url", "redis_prefix", "redis_url"]

# Fuzz tests (test_fuzz_*.py) use this profile: TASKQ_FUZZ_EXAMPLES inputs per property
# (3000 by default; tox.ini lowers it), and no per-example deadline (timings vary on CI).
settings.register_profile(
    "taskq-fuzz",
    max_examples=int(os.environ.get("TASKQ_FUZZ_EXAMPLES", "3000")),
    deadline=None,
)


@pytest.fixture
def raw_redis(redis_url: str) -> Iterator[Any]:
    """A plain synchronous redis-py client, for looking at (and tampering with) the keys."""
    import redis

    with redis.Redis.from_url(redis_url) as client:
        yield client


@pytest.fixture
async def new_broker(redis_url: str, redis_prefix: str) -> AsyncIterator[Callable[..., Any]]:
    """Make started brokers on the test's prefix (workers by default); shut down after."""
    made: list[RedisStreamBroker] = []

    async def new(worker: bool = True, **options: Any) -> RedisStreamBroker:
        broker = RedisStreamBroker(redis_url, key_prefix=redis_prefix, **options)
        broker.is_worker_process = worker
        await broker.startup()
        made.append(broker)
        return broker

    yield new
    for broker in made:
        await broker.shutdown()
