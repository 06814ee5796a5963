"""RedisResultBackend through a Redis outage: calls wait it out, log it once, then fail typed."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from taskq import ResultBackendError, TaskiqResult
from taskq.testing import eventually, free_port

pytest.importorskip("redis", reason="the redis extra is not installed")
import redis

from taskq_inmemory import InMemoryBroker
from taskq_redis import RedisUnavailableError
from taskq_redis.testing import Relay, relayed, throwaway_server
from taskq_result_backends.redis import (
    RedisResultBackend,
    RedisResultStoreUnavailableError,
)

#: Seconds allowed for what must happen "now" on a loaded two-core machine.
PROMPT = 10.0


def success(value: Any) -> TaskiqResult[Any]:
    return TaskiqResult(is_err=False, return_value=value, execution_time=0.1)


def outage_lines(caplog: Any) -> tuple[list[str], list[str]]:
    """The "lost" and "reconnected" warnings logged so far."""
    messages = [r.getMessage() for r in caplog.records if r.name == "taskq.redis"]
    return (
        [m for m in messages if m.startswith("Lost the connection")],
        [m for m in messages if m.startswith("Reconnected")],
    )


@pytest.fixture
async def relay(redis_url: str) -> AsyncIterator[Relay]:
    async with relayed(redis_url) as relay:
        yield relay


@pytest.fixture
def new_backend(relay: Relay, new_redis_backend: Callable[..., Any]) -> Callable[..., Any]:
    """Make started Redis backends that reach Redis through the relay."""
    return functools.partial(new_redis_backend, relay.url)


async def test_calls_made_during_an_outage_complete_when_redis_is_back(relay, new_backend, caplog):
    caplog.set_level(logging.WARNING, "taskq.redis")
    backend = await new_backend()
    relay.cut()
    storing = asyncio.create_task(backend.set_result("t1", success(1)))
    checking = asyncio.create_task(backend.is_result_ready("t2"))
    before = relay.accepted
    await eventually(lambda: relay.accepted >= before + 4, PROMPT, what="retries")
    assert not storing.done()
    relay.restore()
    await asyncio.wait_for(storing, PROMPT)
    assert await asyncio.wait_for(checking, PROMPT) is False
    assert (await backend.get_result("t1")).return_value == 1
    lost, reconnected = outage_lines(caplog)
    assert len(lost) == 1, lost  # two calls failed, one outage
    assert f"Redis at {relay.url}" in lost[0]
    assert len(reconnected) == 1


async def test_after_reconnect_timeout_s_a_call_fails_typed_and_the_next_try_once(
    relay, new_backend
):
    backend = await new_backend(reconnect_timeout_s=0.3, reconnect_max_delay_s=0.05)
    relay.cut()
    with pytest.raises(RedisResultStoreUnavailableError, match=r"did not answer for 0\.3 s") as e:
        await backend.set_result("t1", success(1))
    assert isinstance(e.value, RedisUnavailableError), "one error family for outages"
    # the outage already took the whole time: the next call tries once (a worker then leaves
    # its message unsettled at once instead of waiting again to store an error result)
    before = relay.accepted
    with pytest.raises(RedisResultStoreUnavailableError):
        await backend.set_result("t1", success(2))
    assert relay.accepted == before + 1
    relay.restore()
    await backend.set_result("t1", success(3))
    assert (await backend.get_result("t1")).return_value == 3


async def test_a_poll_without_wait_does_not_retry(relay, new_backend):
    backend = await new_backend(reconnect_timeout_s=PROMPT * 3)
    relay.cut()
    with pytest.raises(RedisResultStoreUnavailableError, match="does not answer"):
        # retrying, it would last until the relay is restored, which it never is here
        await asyncio.wait_for(backend.wait_ready("t1", timeout=0, check_interval=1), PROMPT)


async def test_shutdown_stops_the_calls_waiting_out_an_outage(relay, new_backend):
    backend = await new_backend(reconnect_timeout_s=PROMPT * 3)
    relay.cut()
    storing = asyncio.create_task(backend.set_result("t1", success(1)))
    before = relay.accepted
    await eventually(lambda: relay.accepted >= before + 2, PROMPT, what="retries")
    await backend.shutdown()
    with pytest.raises(RedisResultStoreUnavailableError, match="does not answer"):
        await asyncio.wait_for(storing, PROMPT)


async def test_a_worker_stores_its_result_after_an_outage(relay, new_backend, caplog):
    caplog.set_level(logging.WARNING, "taskq.redis")
    broker = InMemoryBroker().with_result_backend(await new_backend())
    ran = asyncio.Event()

    @broker.task
    async def cut_then_answer() -> int:
        relay.cut()
        ran.set()
        return 42

    await broker.startup()
    try:
        task = await cut_then_answer.kiq()
        await asyncio.wait_for(ran.wait(), PROMPT)
        before = relay.accepted
        await eventually(lambda: relay.accepted >= before + 2, PROMPT, what="retries")
        relay.restore()
        result = await task.wait_result(timeout=PROMPT)
    finally:
        await broker.shutdown()
    assert result.return_value == 42
    lost, reconnected = outage_lines(caplog)
    assert len(lost) == 1, lost
    assert len(reconnected) == 1


async def test_a_result_not_stored_in_time_leaves_its_message_for_another_run(
    relay, new_backend, redis_url, redis_prefix, caplog
):
    from taskq import Receiver
    from taskq_redis import RedisStreamBroker

    backend = await new_backend(reconnect_timeout_s=0.3, reconnect_max_delay_s=0.05)
    broker = RedisStreamBroker(redis_url, key_prefix=redis_prefix, lease_s=1.0)
    broker.with_result_backend(backend)
    broker.is_worker_process = True
    runs: list[int] = []

    @broker.task(task_name="outage:count")
    async def count() -> int:
        runs.append(1)
        if len(runs) == 1:
            relay.cut()  # the result store stays away longer than reconnect_timeout_s
        else:
            relay.restore()
        return len(runs)

    reader: RedisResultBackend[Any] = RedisResultBackend(redis_url, prefix=redis_prefix)
    await broker.startup()
    worker = asyncio.create_task(Receiver(broker).listen())
    try:
        task = await count.kiq()
        assert await reader.wait_ready(task.task_id, PROMPT * 3, 1)
        result = await reader.get_result(task.task_id)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await broker.shutdown()
        await reader.shutdown()
    assert result.return_value == 2, "the message was run again, and that result stored"
    released = [r for r in caplog.records if "released for redelivery" in r.getMessage()]
    assert len(released) == 1
    assert "the result backend does not answer" in released[0].getMessage()


async def test_a_read_from_a_replica_without_its_primary_waits_for_a_primary(
    new_redis_backend, caplog
):
    # in a failover, an address may lead for a while to a replica not yet linked to its
    # primary; serving no stale data, it answers reads MASTERDOWN
    caplog.set_level(logging.WARNING, "taskq.redis")
    with throwaway_server() as url:
        server = redis.Redis.from_url(url)
        backend = await new_redis_backend(url, reconnect_timeout_s=PROMPT)
        await backend.set_result("t1", success(1))
        server.config_set("replica-serve-stale-data", "no")
        server.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # no primary there
        reading = asyncio.create_task(backend.is_result_ready("t1"))
        await eventually(lambda: "MASTERDOWN" in caplog.text, PROMPT, what="a refused read")
        assert not reading.done()
        server.execute_command("REPLICAOF", "NO", "ONE")  # promoted
        assert await asyncio.wait_for(reading, PROMPT) is True
        server.close()


async def test_a_replica_without_its_primary_past_the_budget_is_named(new_redis_backend):
    with throwaway_server() as url:
        server = redis.Redis.from_url(url)
        backend = await new_redis_backend(url, reconnect_timeout_s=0.3)
        server.config_set("replica-serve-stale-data", "no")
        server.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        with pytest.raises(ResultBackendError, match="answered an error: MASTERDOWN") as caught:
            await backend.get_result("t1")
        assert not isinstance(caught.value, RedisUnavailableError), "it answered: no outage"
        assert "point it at the primary" in str(caught.value)
        server.execute_command("REPLICAOF", "NO", "ONE")
        server.close()
