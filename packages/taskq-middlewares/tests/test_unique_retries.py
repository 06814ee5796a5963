"""A unique task keeps its key across its retries, on the in-memory broker and on Redis.

The key is freed only when the task's last run ends: a duplicate ``kiq`` while a retry waits
or runs returns the first task's handle and sends nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from taskq import AsyncBroker, Receiver
from taskq.testing import eventually
from taskq_inmemory import InMemoryBroker
from taskq_middlewares import SimpleRetryMiddleware, SmartRetryMiddleware
from taskq_redis import RedisStreamBroker, RedisUniqueStore
from taskq_redis.testing import redis_prefix, redis_url  # noqa: F401 - fixtures

WAIT = 10


@pytest.fixture(params=["inmemory", "redis"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[AsyncBroker]:
    """A started broker with retries and a worker (a `Receiver` on Redis)."""
    if request.param == "inmemory":
        memory = InMemoryBroker().with_middlewares(SimpleRetryMiddleware(default_retry_count=3))
        async with memory:
            yield memory
        return
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    redis = (
        RedisStreamBroker(url, key_prefix=prefix, delay_check_interval_s=0.05)
        .with_unique_store(RedisUniqueStore(url, key_prefix=prefix))
        .with_middlewares(SmartRetryMiddleware(default_retry_count=3, default_delay=0.2))
    )
    redis.is_worker_process = True
    await redis.startup()
    stop = asyncio.Event()
    listening = asyncio.create_task(Receiver(redis, run_startup=False).listen(stop))
    try:
        yield redis
    finally:
        stop.set()
        await listening
        await redis.shutdown()


async def test_a_duplicate_sent_during_a_retry_is_not_sent_and_the_key_frees_at_the_end(
    broker: AsyncBroker,
):
    runs: list[int] = []
    retry_may_end = asyncio.Event()

    @broker.task(retry_on_error=True)
    async def flaky() -> int:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            raise ValueError("first run fails")
        await retry_may_end.wait()
        return len(runs)

    first = await flaky.kicker().with_unique(key="k").kiq()
    try:
        await eventually(lambda: len(runs) == 2, timeout=WAIT)  # the first failed; retry runs
        duplicate = await flaky.kicker().with_unique(key="k").kiq()
    finally:
        retry_may_end.set()  # a failed check must not leave the worker waiting
    assert duplicate.task_id == first.task_id
    await eventually(lambda: _sent_anew(flaky, first.task_id), timeout=WAIT)
    await eventually(lambda: len(runs) == 3, timeout=WAIT)
    assert runs == [1, 2, 3]  # the duplicate never ran; the kiq after the end did


async def test_the_key_frees_when_the_last_retry_fails(broker: AsyncBroker):
    runs: list[int] = []

    @broker.task(retry_on_error=True, max_retries=2)
    async def always_fails() -> None:
        runs.append(len(runs) + 1)
        raise ValueError("fails")

    first = await always_fails.kicker().with_unique(key="k").kiq()
    await eventually(lambda: len(runs) == 2, timeout=WAIT)
    await eventually(lambda: _sent_anew(always_fails, first.task_id), timeout=WAIT)
    await eventually(lambda: len(runs) >= 3, timeout=WAIT)  # the new task ran


async def _sent_anew(task: Any, first_task_id: str) -> bool:
    """Whether a unique kiq now sends a task of its own (the key was freed)."""
    again = await task.kicker().with_unique(key="k").kiq()
    return bool(again.task_id != first_task_id)
