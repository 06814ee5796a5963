"""Fixtures: a SQLite file per test, and a Redis server that skips (or fails, on CI) if absent."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

with contextlib.suppress(ImportError):  # without the redis extra, Redis tests cannot run
    from taskq_redis.testing import redis_prefix, redis_url

# the Redis server of the tests (skip without one, fail on CI) and a key prefix per test
__all__ = ["redis_prefix", "redis_url"]

# Fuzz tests (test_fuzz_*.py) use this profile: TASKQ_FUZZ_EXAMPLES inputs per property
# (3000 by default; tox.ini lowers it), and no per-example deadline (timings vary on CI).
settings.register_profile(
    "taskq-fuzz",
    max_examples=int(os.environ.get("TASKQ_FUZZ_EXAMPLES", "3000")),
    deadline=None,
)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> str:
    return str(tmp_path / "results.sqlite3")


@pytest.fixture
async def new_redis_backend(redis_url: str, redis_prefix: str) -> AsyncIterator[Callable[..., Any]]:
    """Make started Redis backends on the test's prefix (at ``url``, default the test's Redis);
    they are shut down after the test."""
    from taskq_result_backends import RedisResultBackend

    made: list[Any] = []

    async def new(url: str | None = None, **options: Any) -> Any:
        backend: Any = RedisResultBackend(url or redis_url, prefix=redis_prefix, **options)
        await backend.startup()
        made.append(backend)
        return backend

    yield new
    for backend in made:
        await backend.shutdown()
