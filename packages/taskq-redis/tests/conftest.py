"""Fixtures: the Redis server of the tests (skip without one, fail on CI) and fresh brokers."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from taskq_redis import RedisStreamBroker
from taskq_redis.conformance import REDIS_URL_ENV, delete_keys

DEFAULT_URL = "redis://127.0.0.1:6379/0"

# Fuzz tests (test_fuzz_*.py) use this profile: TASKQ_FUZZ_EXAMPLES inputs per property
# (10000 by default; tox.ini lowers it), and no per-example deadline (timings vary on CI).
settings.register_profile(
    "taskq-fuzz",
    max_examples=int(os.environ.get("TASKQ_FUZZ_EXAMPLES", "10000")),
    deadline=None,
)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server of the tests (``TASKQ_REDIS_URL``); skip without one, fail on CI."""
    import redis

    url = os.environ.get(REDIS_URL_ENV) or DEFAULT_URL
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        reason = f"no Redis server at {url} ({exc}); set {REDIS_URL_ENV} to use another"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires Redis: {reason}", pytrace=False)
        pytest.skip(reason)
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test alone; its keys are deleted after the test."""
    prefix = f"taskq-test-{uuid.uuid4().hex}"
    yield prefix
    delete_keys(redis_url, prefix)


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
