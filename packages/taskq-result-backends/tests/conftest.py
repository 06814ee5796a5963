"""Fixtures: a SQLite file per test, and a Redis server that skips (or fails, on CI) if absent."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from taskq_result_backends.conformance import DEFAULT_REDIS_URL, REDIS_URL_ENV, delete_redis_keys

# Fuzz tests (test_fuzz_*.py) use this profile: TASKQ_FUZZ_EXAMPLES inputs per property
# (10000 by default; tox.ini lowers it), and no per-example deadline (timings vary on CI).
settings.register_profile(
    "taskq-fuzz",
    max_examples=int(os.environ.get("TASKQ_FUZZ_EXAMPLES", "10000")),
    deadline=None,
)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> str:
    return str(tmp_path / "results.sqlite3")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server of the tests (``TASKQ_REDIS_URL``); skip without one, fail on CI."""
    redis = pytest.importorskip("redis", reason="the redis extra is not installed")
    url = os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
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
def redis_prefix(redis_url: str) -> Any:
    """A key prefix of this test alone; its keys are deleted after the test."""
    prefix = f"taskq-test-{uuid.uuid4().hex}"
    yield prefix
    delete_redis_keys(redis_url, prefix)


@pytest.fixture
async def new_redis_backend(redis_url: str, redis_prefix: str) -> AsyncIterator[Callable[..., Any]]:
    """Make started Redis backends on the test's prefix; they are shut down after the test."""
    from taskq_result_backends import RedisResultBackend

    made: list[Any] = []

    async def new(**options: Any) -> Any:
        backend: Any = RedisResultBackend(redis_url, prefix=redis_prefix, **options)
        await backend.startup()
        made.append(backend)
        return backend

    yield new
    for backend in made:
        await backend.shutdown()
