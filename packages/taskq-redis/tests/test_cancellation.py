"""RedisCancellationStore: keys with a TTL, a pub/sub channel, bad input on the channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from taskq import Cancellation, Capability
from taskq_redis import RedisCancellationStore, RedisUnavailableError


@pytest.fixture
async def store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisCancellationStore]:
    made = RedisCancellationStore(redis_url, prefix=redis_prefix)
    await made.startup()
    yield made
    await made.shutdown()


async def test_a_cancellation_is_a_key_with_the_ttl(store, raw_redis: Any):
    assert await store.cancellation("t1") is None
    await store.cancel("t1", "no longer needed")
    assert await store.cancellation("t1") == Cancellation("t1", "no longer needed")
    # 31 days by default: a task delayed by the longest delay (30 days) is still cancelled
    assert 31 * 86_400_000 - 60_000 < raw_redis.pttl(store.key("t1")) <= 31 * 86_400_000
    assert Capability.CROSS_PROCESS in store.capabilities


async def test_a_listener_gets_what_is_published_once_subscribed(store, redis_url, redis_prefix):
    await store.cancel("before")
    feed = await store.listen()
    other = RedisCancellationStore(redis_url, prefix=redis_prefix)  # another client
    await other.cancel("after", "r")
    assert await asyncio.wait_for(feed.__anext__(), 10) == Cancellation("after", "r")
    await other.shutdown()
    await feed.aclose()


async def test_what_is_not_a_cancellation_on_the_channel_is_skipped(store, raw_redis, caplog):
    feed = await store.listen()
    raw_redis.publish(store.channel, b"\xff not json")
    raw_redis.publish(store.channel, b'{"task_id": 5}')
    await store.cancel("real")
    assert await asyncio.wait_for(feed.__anext__(), 10) == Cancellation("real", "")
    assert caplog.text.count("not one") == 2
    await feed.aclose()


async def test_an_unreachable_server_raises_a_typed_error():
    store = RedisCancellationStore("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    with pytest.raises(RedisUnavailableError, match=r"127\.0\.0\.1:1"):
        await store.cancellation("t1")
    with pytest.raises(RedisUnavailableError):
        await store.listen()
    await store.shutdown()


async def test_concurrent_lookups_go_together_and_each_gets_its_answer(store, monkeypatch):
    for n in range(0, 60, 3):
        await store.cancel(f"t{n}", f"r{n}")
    calls = []
    mget = store.connection.client.mget

    async def counted(keys: list[str]) -> Any:
        calls.append(len(keys))
        return await mget(keys)

    monkeypatch.setattr(store.connection.client, "mget", counted)
    found = await asyncio.gather(*(store.cancellation(f"t{n}") for n in range(60)))
    assert found == [Cancellation(f"t{n}", f"r{n}") if n % 3 == 0 else None for n in range(60)]
    assert sum(calls) == 60
    assert calls == [60]  # asked in one turn of the loop: one round trip
