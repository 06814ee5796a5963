"""A worker warns when Redis's memory policy may evict the queue's keys."""

from __future__ import annotations

import logging

import pytest
import redis

from taskq import BrokerMessage
from taskq_redis import RedisStreamBroker
from taskq_redis.testing import take, throwaway_server

WARNING = "once full it evicts queued messages"


async def first_listen_log(url: str, caplog: pytest.LogCaptureFixture) -> str:
    """The log of a worker's first ``listen()`` on ``url``, which takes one message."""
    broker = RedisStreamBroker(url)
    broker.is_worker_process = True
    await broker.startup()
    try:
        await broker.kick(BrokerMessage("t1", "demo", b"m", {}))
        with caplog.at_level(logging.WARNING, logger="taskq.redis"):
            (got,) = await take(broker, 1)
            await got.ack()
    finally:
        await broker.shutdown()
    return caplog.text


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
async def test_a_policy_evicting_any_key_is_warned_of(
    policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    with throwaway_server("--maxmemory-policy", policy) as url:
        text = await first_listen_log(url, caplog)
    assert f"maxmemory-policy {policy}" in text
    assert "set maxmemory-policy noeviction" in text


@pytest.mark.parametrize("policy", ["noeviction", "volatile-lru"])
async def test_a_policy_that_never_evicts_a_stream_is_not(
    policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    with throwaway_server("--maxmemory-policy", policy) as url:
        assert WARNING not in await first_listen_log(url, caplog)


async def test_a_policy_redis_will_not_tell_is_not_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with throwaway_server("--maxmemory-policy", "allkeys-lru") as url:
        with redis.Redis.from_url(url) as admin:
            admin.acl_setuser(
                "worker", enabled=True, passwords=["+pw"], commands=["+@all", "-config"], keys=["*"]
            )
        text = await first_listen_log(url.replace("redis://", "redis://worker:pw@"), caplog)
    assert WARNING not in text  # managed services often deny CONFIG: advice, not a failure
