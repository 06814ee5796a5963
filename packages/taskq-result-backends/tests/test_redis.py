"""RedisResultBackend against a real server: round trips, TTL, notify, processes, errors."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from typing import Any

import pytest

from taskq import (
    Capability,
    ResultBackendError,
    ResultGetError,
    SerializationError,
    TaskiqResult,
    TaskProgress,
    TaskState,
)
from taskq.testing import eventually
from taskq_result_backends import ResultKeyTypeError, ResultStoreUnavailableError

redis = pytest.importorskip("redis", reason="the redis extra is not installed")
from taskq_redis import RedisUnavailableError  # noqa: E402
from taskq_result_backends.redis import RedisResultBackend  # noqa: E402
from taskq_result_backends.ttl import MAX_RESULT_TTL_S  # noqa: E402

#: Seconds allowed for what must happen "now" on a loaded two-core machine.
PROMPT = 10.0


def success(value: Any, **extra: Any) -> TaskiqResult[Any]:
    return TaskiqResult(is_err=False, return_value=value, execution_time=0.5, **extra)


@pytest.fixture
async def backend(new_redis_backend):
    return await new_redis_backend()


@pytest.fixture
def raw(redis_url):
    with redis.Redis.from_url(redis_url) as client:
        yield client


# -- round trips -------------------------------------------------------------------------------


async def test_result_round_trip_under_the_documented_key(backend, raw, redis_prefix):
    labels = {"text": "é", "nested": {"a": [1]}}
    await backend.set_result("t1", success({"answer": 42}, labels=labels, log="l1\nl2"))
    assert raw.exists(f"{redis_prefix}:result:t1") == 1
    assert 0 < raw.pttl(f"{redis_prefix}:result:t1") <= 86_400_000  # kept one day
    assert await backend.is_result_ready("t1")
    result = await backend.get_result("t1")
    assert (result.return_value, result.labels, result.log) == ({"answer": 42}, labels, "l1\nl2")
    assert result.execution_time == pytest.approx(0.5)
    assert (await backend.get_result("t1", with_logs=False)).log is None


async def test_unknown_id_is_not_ready_and_has_no_progress(backend):
    assert not await backend.is_result_ready("missing")
    with pytest.raises(ResultGetError, match="missing"):
        await backend.get_result("missing")
    assert await backend.get_progress("missing") is None


async def test_error_results_keep_type_and_message(backend):
    error = KeyError("no such thing")
    await backend.set_result(
        "e", TaskiqResult(is_err=True, return_value=None, execution_time=0, error=error)
    )
    result = await backend.get_result("e")
    assert result.is_err
    assert isinstance(result.error, KeyError)
    assert result.error.args == ("no such thing",)


async def test_an_unencodable_result_raises_serialization_error(backend):
    with pytest.raises(SerializationError):
        await backend.set_result("t", success(object()))
    assert not await backend.is_result_ready("t")


@pytest.mark.parametrize("call", ["set_result", "get_result", "is_result_ready", "get_progress"])
async def test_a_task_id_that_is_not_valid_unicode_is_a_result_backend_error(backend, call):
    # a task id decoded from JSON may hold a lone surrogate: redis-py's bare
    # UnicodeEncodeError came out of every call
    task_id = "t\udc80"
    result = TaskiqResult(is_err=False, return_value=1, execution_time=0.0)
    arguments = (task_id, result) if call == "set_result" else (task_id,)
    with pytest.raises(ResultBackendError, match="not valid Unicode"):
        await getattr(backend, call)(*arguments)
    await backend.set_result("t", result)  # the backend goes on
    assert (await backend.get_result("t")).return_value == 1


async def test_progress_keeps_the_latest_report(backend, raw, redis_prefix):
    await backend.set_progress("p", TaskProgress(TaskState.STARTED, {"done": 1}))
    await backend.set_progress("p", TaskProgress(TaskState.STARTED, {"done": 2}))
    assert await backend.get_progress("p") == TaskProgress(TaskState.STARTED, {"done": 2})
    assert raw.exists(f"{redis_prefix}:progress:p") == 1


async def test_capabilities():
    assert RedisResultBackend.capabilities == {
        Capability.PROGRESS,
        Capability.TTL,
        Capability.NOTIFY,
        Capability.CROSS_PROCESS,
    }


# -- TTL ------------------------------------------------------------------------------------------


async def test_results_and_progress_expire_after_the_ttl(new_redis_backend, raw, redis_prefix):
    backend = await new_redis_backend(result_ttl=0.5)
    await backend.set_result("short", success(1))
    await backend.set_progress("short", TaskProgress(TaskState.STARTED))
    assert 0 < raw.pttl(f"{redis_prefix}:result:short") <= 500
    assert await backend.is_result_ready("short")
    await asyncio.sleep(1.0)
    assert not await backend.is_result_ready("short")
    assert await backend.get_progress("short") is None
    with pytest.raises(ResultGetError, match="expired"):
        await backend.get_result("short")


async def test_result_ttl_can_change_and_applies_to_later_writes(backend, raw, redis_prefix):
    await backend.set_result("a-day", success(1))  # the default: one day
    backend.result_ttl = None
    await backend.set_result("forever", success(2))
    backend.result_ttl = 30
    await backend.set_result("later", success(3))
    assert 86_000_000 < raw.pttl(f"{redis_prefix}:result:a-day") <= 86_400_000
    assert raw.pttl(f"{redis_prefix}:result:forever") == -1
    assert 0 < raw.pttl(f"{redis_prefix}:result:later") <= 30_000


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e30, 0, "60"])
async def test_a_result_ttl_redis_cannot_hold_is_refused_when_set_not_at_each_write(backend, bad):
    # NaN, inf and 1e30 were accepted, then every write failed (ValueError, OverflowError, or
    # an error from Redis), so no result of any task could be stored
    with pytest.raises(ValueError, match="result_ttl"):
        RedisResultBackend(result_ttl=bad)
    with pytest.raises(ValueError, match="result_ttl"):
        backend.result_ttl = bad
    await backend.set_result("kept", success(1))  # the old lifetime still applies
    assert await backend.is_result_ready("kept")


async def test_the_longest_result_ttl_accepted_is_one_redis_can_hold(backend, raw, redis_prefix):
    backend.result_ttl = MAX_RESULT_TTL_S
    await backend.set_result("long", success(1))
    assert raw.pttl(f"{redis_prefix}:result:long") > 10**14


# -- notify ----------------------------------------------------------------------------------------


async def test_a_waiter_is_woken_by_a_result_stored_elsewhere(new_redis_backend):
    waiter, writer = await new_redis_backend(), await new_redis_backend()
    # an interval far longer than the test: only the notification can wake the waiter
    waiting = asyncio.create_task(waiter.wait_ready("t", timeout=PROMPT * 6, check_interval=3600))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    stored_at = time.monotonic()
    await writer.set_result("t", success(1))
    assert await asyncio.wait_for(waiting, PROMPT) is True
    assert time.monotonic() - stored_at < PROMPT


async def test_a_result_stored_before_the_wait_is_seen_at_once(backend):
    await backend.set_result("done", success(1))
    assert await asyncio.wait_for(backend.wait_ready("done", None, 3600), PROMPT) is True
    assert await backend.wait_ready("done", timeout=0, check_interval=3600) is True


async def test_a_wait_times_out_with_false(backend):
    assert await backend.wait_ready("never", timeout=0.3, check_interval=3600) is False
    assert await backend.wait_ready("never", timeout=0, check_interval=3600) is False
    assert backend._waiters == {}


async def test_many_waiters_share_one_subscription(new_redis_backend, raw, redis_prefix):
    waiter, writer = await new_redis_backend(), await new_redis_backend()
    ids = [f"w{i}" for i in range(300)]
    waits = [asyncio.create_task(waiter.wait_ready(i, PROMPT * 6, 3600)) for i in ids]
    waits += [asyncio.create_task(waiter.wait_ready("w0", PROMPT * 6, 3600)) for _ in range(3)]
    channel = f"{redis_prefix}:ready"
    await eventually(lambda: raw.pubsub_numsub(channel)[0][1] > 0, PROMPT, what="a subscription")
    await asyncio.sleep(0.3)  # all waiters registered: still one subscription
    assert raw.pubsub_numsub(channel) == [(channel.encode(), 1)]
    await asyncio.gather(*(writer.set_result(i, success(i)) for i in ids))
    assert all(await asyncio.wait_for(asyncio.gather(*waits), PROMPT))
    assert waiter._waiters == {}


async def test_a_waiter_survives_a_lost_pubsub_connection(new_redis_backend, raw, redis_prefix):
    name = f"{redis_prefix}-waiter"
    waiter = await new_redis_backend(client_name=name)
    writer = await new_redis_backend()
    waiting = asyncio.create_task(waiter.wait_ready("t", PROMPT * 6, 3600))

    def subscribed() -> list[str]:
        clients = raw.client_list(_type="pubsub")
        return [client["id"] for client in clients if client.get("name") == name]

    ours = await eventually(subscribed, PROMPT, what="the waiter's subscription")
    assert len(ours) == 1
    raw.client_kill_filter(_id=ours[0])
    await asyncio.sleep(0.3)
    await writer.set_result("t", success(1))
    assert await asyncio.wait_for(waiting, PROMPT) is True


async def test_shutdown_ends_pending_waits_with_an_error(new_redis_backend):
    waiter = await new_redis_backend()
    waiting = asyncio.create_task(waiter.wait_ready("t", PROMPT * 6, 3600))
    await asyncio.sleep(0.2)
    await waiter.shutdown()
    with pytest.raises(ResultBackendError, match="shut down"):
        await asyncio.wait_for(waiting, PROMPT)


async def test_it_works_again_after_shutdown(backend):
    await backend.set_result("a", success(1))
    await backend.shutdown()
    assert await backend.wait_ready("a", PROMPT, 3600)
    assert (await backend.get_result("a")).return_value == 1


# -- concurrency and processes -------------------------------------------------------------------


async def test_a_thousand_concurrent_writers_never_mix_results(new_redis_backend):
    backend = await new_redis_backend(max_connections=8)
    ids = [f"task-{i}" for i in range(1000)]
    await asyncio.gather(*(backend.set_result(i, success(i)) for i in ids))
    results = await asyncio.gather(*(backend.get_result(i) for i in ids))
    assert [r.return_value for r in results] == ids


async def test_a_result_stored_by_another_process_wakes_the_waiter(
    backend, redis_url, redis_prefix
):
    script = textwrap.dedent(
        """
        import asyncio, sys
        from taskq import TaskiqResult
        from taskq_result_backends import RedisResultBackend

        async def main(url, prefix):
            backend = RedisResultBackend(url, prefix=prefix)
            await backend.startup()
            await asyncio.sleep(0.5)
            result = TaskiqResult(is_err=False, return_value=[1, "two"], execution_time=0)
            await backend.set_result("from-child", result)
            await backend.shutdown()

        asyncio.run(main(sys.argv[1], sys.argv[2]))
        """
    )
    waiting = asyncio.create_task(backend.wait_ready("from-child", 60, 3600))
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, redis_url, redis_prefix
    )
    assert await asyncio.wait_for(child.wait(), 60) == 0
    assert await asyncio.wait_for(waiting, PROMPT) is True
    assert (await backend.get_result("from-child")).return_value == [1, "two"]


# -- errors and arguments ----------------------------------------------------------------------


async def test_an_unreachable_server_is_named_without_its_password():
    backend = RedisResultBackend(
        "redis://:hunter2@127.0.0.1:1/0",
        socket_connect_timeout=1,
        retry=None,
        reconnect_timeout_s=0.2,
    )
    with pytest.raises(ResultStoreUnavailableError, match=r"127\.0\.0\.1:1/0") as caught:
        await backend.startup()
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)
    assert isinstance(caught.value, RedisUnavailableError), "one error family for outages"
    with pytest.raises(ResultStoreUnavailableError):
        await backend.wait_ready("t", timeout=PROMPT, check_interval=3600)
    await backend.shutdown()


# -- a key of another type, written by other code ----------------------------------------------


async def test_a_result_key_of_another_type_is_not_ready_and_reading_it_names_the_key(
    backend, raw, redis_prefix
):
    key = f"{redis_prefix}:result:listed"
    raw.rpush(key, "not a string")
    assert not await backend.is_result_ready("listed")
    assert not await backend.wait_ready("listed", timeout=0, check_interval=1)
    with pytest.raises(ResultKeyTypeError) as raised:
        await backend.get_result("listed")
    assert isinstance(raised.value, ResultGetError)  # so a ResultBackendError too
    assert (raised.value.key, raised.value.found, raised.value.needed) == (key, "list", "string")
    assert repr(key) in str(raised.value)
    assert "delete that key" in str(raised.value)
    assert raw.lrange(key, 0, -1) == [b"not a string"]  # reading changed nothing


async def test_a_long_key_of_another_type_is_quoted_shortened(new_redis_backend, raw, redis_prefix):
    backend = await new_redis_backend()
    task_id = "x" * 100_000
    raw.sadd(backend.result_key(task_id), "member")
    with pytest.raises(ResultKeyTypeError, match="holds a set") as raised:
        await backend.get_result(task_id)
    assert len(str(raised.value)) < 2_000


async def test_storing_a_result_replaces_a_key_of_another_type_and_wakes_the_waiter(
    new_redis_backend, raw, redis_prefix
):
    waiting, writing = await new_redis_backend(), await new_redis_backend()
    raw.rpush(f"{redis_prefix}:result:taken", "not a string")
    waiter = asyncio.create_task(waiting.wait_ready("taken", timeout=PROMPT, check_interval=3600))
    await eventually(lambda: "taken" in waiting._waiters, PROMPT, what="the waiter to subscribe")
    await writing.set_result("taken", success(7))
    assert await waiter
    assert (await waiting.get_result("taken")).return_value == 7


async def test_a_progress_key_of_another_type_names_the_key(backend, raw, redis_prefix):
    raw.hset(f"{redis_prefix}:progress:p", "field", "value")
    with pytest.raises(ResultKeyTypeError, match="holds a hash"):
        await backend.get_progress("p")
    await backend.set_progress("p", TaskProgress(TaskState.STARTED, {"done": 1}))
    assert await backend.get_progress("p") == TaskProgress(TaskState.STARTED, {"done": 1})


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="Redis URL"):
        RedisResultBackend("http://127.0.0.1:6379")
    with pytest.raises(ValueError, match="result_ttl"):
        RedisResultBackend(result_ttl=-1)
    with pytest.raises(ValueError, match="max_connections"):
        RedisResultBackend(max_connections=1)
    with pytest.raises(ValueError, match="reconnect_timeout_s"):
        RedisResultBackend(reconnect_timeout_s=-1)
    with pytest.raises(ValueError, match="reconnect_max_delay_s"):
        RedisResultBackend(reconnect_max_delay_s=0)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisResultBackend(decode_responses=True)
