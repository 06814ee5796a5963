"""Messages that end unsettled: released, dropped, or handed back by a stopping worker.

Each keeps its delivery count, so one that never succeeds reaches the dead letters after
``max_deliveries``; none stays held (and heartbeated) while no one can settle it any more.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import re
import time
import uuid
from typing import Any

import pytest

from taskq import AckableMessage, AsyncResultBackend, BrokerMessage, Receiver, TaskiqResult
from taskq.exceptions import ResultGetError
from taskq.testing import cancel_until_done, eventually
from taskq_redis import RedisStreamBroker
from taskq_redis.testing import take


def message(body: bytes) -> BrokerMessage:
    return BrokerMessage(uuid.uuid4().hex, "test:raw", body, {})


def deliveries(raw_redis: Any, broker: RedisStreamBroker) -> dict[bytes, int]:
    """``{message bytes: delivery count}`` of every pending entry at level 0."""
    stream = broker.keys.streams[0]
    counts = {}
    for p in raw_redis.xpending_range(stream, "taskq", "-", "+", 10_000):
        ((_, fields),) = raw_redis.xrange(stream, p["message_id"], p["message_id"])
        counts[fields[b"m"]] = p["times_delivered"]
    return counts


async def test_a_released_message_comes_back_within_a_lease_keeping_its_count(
    new_broker, raw_redis
):
    holder = await new_broker(lease_s=1.0, block_ms=100, max_deliveries=2)
    other = await new_broker(lease_s=1.0, block_ms=100, max_deliveries=2)
    await holder.kick(message(b"unsettled"))
    (item,) = await take(holder, 1)
    assert item.release is not None
    released_at = time.monotonic()
    await item.release()  # type: ignore[misc]
    (again,) = await take(other, 1, timeout=5)
    waited = time.monotonic() - released_at
    assert again.data == b"unsettled"
    assert 0.5 <= waited <= 1.0 + 1.0, f"came back after {waited:.2f} s, lease 1 s"
    assert deliveries(raw_redis, other) == {b"unsettled": 2}
    await again.release()  # type: ignore[misc]
    # delivered max_deliveries times: the next reclaim dead-letters it instead
    looking = asyncio.ensure_future(take(holder, 1, timeout=10))
    await eventually(lambda: raw_redis.xlen(holder.keys.dead_letters) == 1, timeout=5)
    looking.cancel()
    (letter,) = await holder.dead_letters.list()
    assert letter.payload == b"unsettled"
    assert "delivered 2 times" in letter.reason
    assert "released it unsettled" in letter.reason
    assert raw_redis.xlen(holder.keys.streams[0]) == 0


async def test_a_message_dropped_unsettled_is_released_not_held_forever(
    new_broker, raw_redis, caplog
):
    holder = await new_broker(lease_s=1.0, block_ms=100)
    other = await new_broker(lease_s=1.0, block_ms=100)
    await holder.kick(message(b"forgotten"))
    (item,) = await take(holder, 1)
    del item  # processing ended without ack, reject or release (a receiver that forgets)
    gc.collect()
    (again,) = await take(other, 1, timeout=5)  # the holder lives and heartbeats on
    assert again.data == b"forgotten"
    assert deliveries(raw_redis, other) == {b"forgotten": 2}
    assert "dropped unsettled" in caplog.text
    await again.ack()  # type: ignore[misc]


async def test_a_hand_back_keeps_ids_and_counts_and_another_worker_takes_it_promptly(
    new_broker, redis_url, redis_prefix, raw_redis
):
    leaving = RedisStreamBroker(redis_url, key_prefix=redis_prefix, batch_size=20)
    leaving.is_worker_process = True
    await leaving.startup()
    for n in range(10):
        await leaving.kick(message(b"%d" % n))
    listening = leaving.listen()  # open until the shutdown, which hands everything back
    started = await listening.__anext__()  # read all 10 in one batch, started one, acked none
    stream = leaving.keys.streams[0]
    ids = [p["message_id"] for p in raw_redis.xpending_range(stream, "taskq", "-", "+", 20)]
    assert len(ids) == 10
    staying = await new_broker(lease_s=60)  # so nothing comes back through a lease
    received: list[AckableMessage] = []

    async def consume() -> None:
        async for item in staying.listen():
            received.append(item)

    consumer = asyncio.ensure_future(consume())
    # the staying worker is running: its first looks (for anything to take over) are done
    await eventually(lambda: bool(staying._consumers) and _has_looked(staying), timeout=5)
    handed_back_at = time.monotonic()
    await leaving.shutdown()
    await eventually(lambda: len(received) == 10, timeout=5)
    assert time.monotonic() - handed_back_at < 3, "not taken promptly"
    await cancel_until_done(consumer)
    await listening.aclose()
    assert [m.data for m in received] == [b"%d" % n for n in range(10)], "order lost"
    pending = raw_redis.xpending_range(stream, "taskq", "-", "+", 20)
    assert [p["message_id"] for p in pending] == ids, "handed back as new entries"
    # the started one counts its delivery; the 9 never started do not
    counts = deliveries(raw_redis, staying)
    assert counts.pop(started.data) == 2
    assert set(counts.values()) == {1}


async def test_messages_handed_back_taken_by_a_reclaim_are_not_reported_as_expired(
    new_broker, redis_url, redis_prefix, caplog
):
    # a handed-back entry is idle for a lease already, so a reclaim may take it before the
    # check for handed-back entries does: it warned "lease had expired: their worker stopped
    # without acknowledging them" about a worker that had stopped cleanly
    caplog.set_level(logging.INFO, "taskq.redis")
    leaving = RedisStreamBroker(redis_url, key_prefix=redis_prefix, batch_size=20)
    leaving.is_worker_process = True
    await leaving.startup()
    for n in range(5):
        await leaving.kick(message(b"%d" % n))
    listening = leaving.listen()
    await listening.__anext__()  # read all 5, started one
    staying = await new_broker(reclaim_interval_s=0.2)  # the lease of the leaving one
    received: list[AckableMessage] = []

    async def consume() -> None:
        async for item in staying.listen():
            received.append(item)

    consumer = asyncio.ensure_future(consume())
    await eventually(lambda: bool(staying._consumers) and _has_looked(staying), timeout=5)
    # only a reclaim takes what comes back
    staying._consumers[0]._next_handed_back_check = math.inf
    await leaving.shutdown()
    await eventually(lambda: len(received) == 5, timeout=10)
    await cancel_until_done(consumer)
    await listening.aclose()
    assert "had expired" not in caplog.text
    # one look or two (the stopping worker hands back what it had not started, then the rest)
    took = re.findall(r"Took (\d+) message\(s\) a stopping worker handed back", caplog.text)
    assert sum(map(int, took)) == 5, caplog.text


@pytest.mark.parametrize("ended", ["closed", "dropped"])
async def test_a_listen_that_ends_hands_back_at_once_what_it_read_and_did_not_yield(
    new_broker, raw_redis, ended
):
    leaving = await new_broker(batch_size=20, lease_s=60)  # nothing comes back by a lease
    for n in range(10):
        await leaving.kick(message(b"%d" % n))
    if ended == "closed":
        listening = leaving.listen()
        started = await listening.__anext__()  # read all 10 in one batch, yielded one
        await listening.aclose()
    else:
        async for item in leaving.listen():  # its caller stops iterating and drops it
            started = item
            break
        gc.collect()
    staying = await new_broker(lease_s=60)
    received = await take(staying, 9, timeout=5)  # not held until the leaving one shuts down
    assert [m.data for m in received] == [b"%d" % n for n in range(1, 10)]
    # the yielded one stays with its consumer (it may be running) until settled
    stream = leaving.keys.streams[0]
    owners = {
        p["message_id"]: p["consumer"]
        for p in raw_redis.xpending_range(stream, "taskq", "-", "+", 20)
    }
    assert len(owners) == 10
    first_id = min(owners)
    assert owners[first_id].decode().startswith(leaving.consumer_name)
    # the 9 never started had that delivery undone
    counts = deliveries(raw_redis, staying)
    assert counts.pop(started.data) == 1
    assert set(counts.values()) == {1}
    await started.ack()  # type: ignore[misc]
    for item in received:
        await item.ack()  # type: ignore[misc]


async def test_a_listen_that_ended_leaves_the_group_once_what_it_yielded_is_settled(
    new_broker, raw_redis
):
    broker = await new_broker(batch_size=20, lease_s=0.3)  # a heartbeat every 0.1 s
    for n in range(3):
        await broker.kick(message(b"%d" % n))
    (item,) = await take(broker, 1)  # read 3, yielded 1: 2 handed back, 1 held
    stream = broker.keys.streams[0]

    def consumers() -> set[str]:  # this broker's, not those that hold what is handed back
        names = {c["name"].decode() for c in raw_redis.xinfo_consumers(stream, "taskq")}
        return {name for name in names if name.startswith(broker.consumer_name)}

    assert len(broker._consumers) == 1  # it still holds what it yielded
    await item.ack()  # type: ignore[misc]
    rest = await take(broker, 2, timeout=5)  # the 2 handed back, to the next listen()
    for other in rest:
        await other.ack()  # type: ignore[misc]
    await eventually(lambda: raw_redis.xpending(stream, "taskq")["pending"] == 0, timeout=5)
    await eventually(lambda: consumers() == set(), timeout=5)  # at their next heartbeat
    assert all(consumer.closed for consumer in broker._consumers)


def _has_looked(broker: RedisStreamBroker) -> bool:
    consumer = broker._consumers[0]
    return consumer._next_handed_back_check > 0 and consumer._next_reclaim > 0


async def test_a_message_handed_back_max_deliveries_times_goes_to_the_dead_letters(
    redis_url, redis_prefix, raw_redis, new_broker
):
    options: dict[str, Any] = {"key_prefix": redis_prefix, "max_deliveries": 3}
    for stop in range(3):
        worker = RedisStreamBroker(redis_url, **options)
        worker.is_worker_process = True
        await worker.startup()
        if stop == 0:
            await worker.kick(message(b"stops its worker"))
            await worker.kick(message(b"good"))  # read with it, never started
        (running,) = await take(worker, 1, timeout=5)
        assert running.data == b"stops its worker"
        await worker.shutdown()  # a graceful stop while the task runs: handed back
    last = await new_broker(**{k: v for k, v in options.items() if k != "key_prefix"})
    (item,) = await take(last, 1, timeout=5)
    assert item.data == b"good", "a message never run was pushed to the dead letters"
    assert deliveries(raw_redis, last) == {b"good": 1}
    (letter,) = await last.dead_letters.list()
    assert letter.payload == b"stops its worker"
    assert letter.deliveries == 3
    assert "delivered 3 times" in letter.reason
    assert "handed back by a stopping worker" in letter.reason
    await item.ack()  # type: ignore[misc]


class FlakyResultBackend(AsyncResultBackend[Any]):
    """Keeps results in memory; every call fails while it is down."""

    def __init__(self) -> None:
        self.results: dict[str, TaskiqResult[Any]] = {}
        self.down_until = 0.0

    def _answer(self) -> None:
        if time.monotonic() < self.down_until:
            raise ConnectionError("the result backend is down")

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        self._answer()
        self.results[task_id] = result

    async def is_result_ready(self, task_id: str) -> bool:
        self._answer()
        return task_id in self.results

    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[Any]:
        try:
            return self.results[task_id]
        except KeyError:
            raise ResultGetError(f"no result for {task_id}") from None


async def test_messages_whose_results_could_not_be_stored_are_run_again_after_the_outage(
    new_broker, raw_redis, caplog
):
    # the 2,000 messages, 5 s lease and 6 s outage, scaled down: lease 2 s, outage
    # 2.4 s (a read blocks 0.4 s, as 1 s does with a 5 s lease)
    caplog.set_level(logging.CRITICAL, logger="taskq.receiver")  # one error per failed store
    lease_s, outage_s, count = 2.0, 2.4, 2000
    backend = FlakyResultBackend()
    broker = await new_broker(lease_s=lease_s, block_ms=400, result_backend=backend)

    @broker.task(task_name="test:square")
    async def square(n: int) -> int:
        await asyncio.sleep(0.05)
        return n * n

    worker = asyncio.ensure_future(Receiver(broker, max_async_tasks=100).listen())
    backend.down_until = time.monotonic() + outage_s
    tasks = await asyncio.gather(*(square.kiq(n) for n in range(count)))
    await eventually(lambda: time.monotonic() >= backend.down_until, timeout=outage_s + 1)
    waiting = asyncio.ensure_future(tasks[3].wait_result(check_interval=0.05, timeout=30))
    stream = broker.keys.streams[0]

    def all_settled() -> bool:
        return len(backend.results) == count and raw_redis.xlen(stream) == 0

    # two leases on a quiet machine; a loaded one runs the 2,000 tasks slower
    await eventually(all_settled, timeout=15 * lease_s)
    assert raw_redis.xpending(stream, "taskq")["pending"] == 0
    result = await asyncio.wait_for(waiting, 5)
    assert not result.is_err
    assert result.return_value == 9
    failed = [repr(r.error) for r in backend.results.values() if r.is_err]
    assert not failed, f"{len(failed)} failed results, among them: {failed[:3]}"
    assert await broker.dead_letters.count() == 0
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
