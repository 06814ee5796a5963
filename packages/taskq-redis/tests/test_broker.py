"""The Redis broker in one process, against a real Redis: acks, leases, delay, priority, errors."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import math
import time
import uuid
from typing import Any

import pytest

from taskq import BrokerMessage, Capability, ListenError, Receiver, SendTaskError, TaskiqMessage
from taskq.event_stores import InMemoryEventStore
from taskq.task_events import EventKind
from taskq.testing import cancel_until_done, eventually
from taskq_redis import (
    InvalidLabelError,
    RedisStreamBroker,
    RedisUnavailableError,
    RedisUniqueStore,
    SendUnavailableError,
)
from taskq_redis.delayed import move_due_forever
from taskq_redis.testing import relayed, take


def message(body: bytes, **labels: Any) -> BrokerMessage:
    return BrokerMessage(uuid.uuid4().hex, "test:raw", body, labels)


async def nothing_comes(broker: RedisStreamBroker, wait: float) -> bool:
    """True when a new ``listen()`` of ``broker`` yields nothing within ``wait`` seconds."""
    try:
        await take(broker, 1, timeout=wait)
    except asyncio.TimeoutError:
        return True
    return False


def pending(raw_redis: Any, broker: RedisStreamBroker, level: int = 0) -> int:
    return int(raw_redis.xpending(broker.keys.streams[level], "taskq")["pending"])


async def test_ack_acknowledges_and_deletes_the_entry(new_broker, raw_redis):
    broker = await new_broker()
    for n in range(50):
        await broker.kick(message(b"%d" % n))
    assert raw_redis.xlen(broker.keys.streams[0]) == 50
    received = await take(broker, 50)
    assert sorted(int(m.data) for m in received) == list(range(50))
    assert pending(raw_redis, broker) == 50
    await asyncio.gather(*(m.ack() for m in received))  # type: ignore[misc]
    assert pending(raw_redis, broker) == 0
    assert raw_redis.xlen(broker.keys.streams[0]) == 0, "acknowledged entries piled up"


@pytest.mark.parametrize("level", [0, 1])
async def test_a_stream_key_of_another_type_stops_listen_with_a_typed_error(
    new_broker, raw_redis, level
):
    broker = await new_broker(priority_levels=2)
    stream = broker.keys.streams[level]
    raw_redis.rpush(stream, "written by other code")
    with pytest.raises(ListenError) as caught:
        await take(broker, 1, timeout=10)
    message = str(caught.value)
    assert f"the key '{stream}'" in message
    assert "holds another type than a stream" in message
    assert "another key_prefix or queue_name" in message
    assert raw_redis.type(stream) == b"list", "left as it was"


# redis-py 8's repr of its errors leaves out Redis's answer: the error said only
# "could not send: server:ResponseError"
async def test_a_send_to_a_stream_key_of_another_type_says_what_redis_answered(
    new_broker, raw_redis
):
    broker = await new_broker()

    @broker.task(task_name="test:noop")
    async def noop() -> None: ...

    raw_redis.rpush(broker.keys.streams[0], "written by other code")
    with pytest.raises(
        SendTaskError, match=r"cannot send the task: Redis at .* answered an error: WRONGTYPE"
    ):
        await noop.kiq()


async def test_a_task_runs_through_the_receiver_and_its_message_is_gone(new_broker, raw_redis):
    broker = await new_broker()
    done = asyncio.Event()

    @broker.task(task_name="test:flag")
    async def flag() -> None:
        done.set()

    worker = asyncio.create_task(Receiver(broker).listen())
    await flag.kiq()
    await asyncio.wait_for(done.wait(), 30)
    for _ in range(100):
        if pending(raw_redis, broker) == 0:
            break
        await asyncio.sleep(0.05)
    assert raw_redis.xlen(broker.keys.streams[0]) == 0
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)


async def test_reject_moves_the_message_to_the_dead_letters(new_broker, raw_redis):
    broker = await new_broker()
    await broker.kick(message(b"poison"))
    (item,) = await take(broker, 1)
    assert item.reject is not None
    await item.reject()  # type: ignore[misc]
    assert raw_redis.xlen(broker.keys.streams[0]) == 0
    assert pending(raw_redis, broker) == 0
    (letter,) = await broker.dead_letters.list()
    assert letter.payload == b"poison"
    assert "rejected" in letter.reason
    assert letter.deliveries == 1
    assert letter.consumer.startswith(broker.consumer_name)


async def test_dead_letters_show_replay_and_purge(new_broker):
    broker = await new_broker()
    for body in (b"a", b"b", b"c"):
        await broker.kick(message(body, priority=7))
    for item in await take(broker, 3):
        await item.reject()  # type: ignore[misc]
    letters = await broker.dead_letters.list()
    assert [letter.payload for letter in letters] == [b"a", b"b", b"c"]
    assert all(letter.priority_level == 7 for letter in letters)
    shown = await broker.dead_letters.show(letters[1].id)
    assert shown == letters[1]
    assert await broker.dead_letters.show("1-1") is None
    assert await broker.dead_letters.replay([letters[0].id]) == 1
    assert await broker.dead_letters.replay([letters[0].id]) == 0, "replayed twice"
    (again,) = await take(broker, 1)
    assert again.data == b"a"
    await again.ack()  # type: ignore[misc]
    assert await broker.dead_letters.purge([letters[1].id]) == 1
    assert [letter.payload for letter in await broker.dead_letters.list()] == [b"c"]
    assert await broker.dead_letters.replay() == 1
    assert await broker.dead_letters.count() == 0
    (last,) = await take(broker, 1)
    assert last.data == b"c"
    await last.reject()  # type: ignore[misc]
    assert await broker.dead_letters.purge() == 1
    assert await broker.dead_letters.count() == 0


async def test_dead_letters_take_ids_that_are_not_entry_ids_as_naming_none(new_broker):
    broker = await new_broker()
    await broker.kick(message(b"a"))
    (item,) = await take(broker, 1)
    await item.reject()  # type: ignore[misc]
    (letter,) = await broker.dead_letters.list()
    garbage = ["garbage", "-", "+", "1", "(1-0", "1-2-3", "99999999999999999999-0", "é", ""]
    for dead_letter_id in garbage:
        assert await broker.dead_letters.show(dead_letter_id) is None, dead_letter_id
        assert await broker.dead_letters.list(after=dead_letter_id or "x") == []
    assert await broker.dead_letters.purge(garbage) == 0
    assert await broker.dead_letters.replay([*garbage, letter.id]) == 1
    assert await broker.dead_letters.count() == 0


async def test_listing_no_dead_letter_lists_none(new_broker, raw_redis):
    broker = await new_broker()
    raw_redis.xadd(broker.keys.dead_letters, {b"m": b"x"})
    for count in (0, -1):  # `taskq dlq list --count 0` ended in redis-py's DataError
        assert await broker.dead_letters.list(count=count) == []


async def test_a_dead_letter_written_by_hand_with_an_impossible_time_is_listed(
    new_broker, raw_redis
):
    broker = await new_broker()
    for dead_at_ms in (b"99999999999999999999", b"-99999999999999", b"soon"):
        raw_redis.xadd(broker.keys.dead_letters, {b"m": b"x", b"dead_at_ms": dead_at_ms})
    letters = await broker.dead_letters.list()
    assert [letter.dead_at for letter in letters[:2]] == [None, None]
    assert letters[2].dead_at is not None  # 0 ms: the epoch, as for a missing field


async def test_dead_letters_page_with_after(new_broker):
    broker = await new_broker()
    for n in range(5):
        await broker.kick(message(b"%d" % n))
    for item in await take(broker, 5):
        await item.reject()  # type: ignore[misc]
    first = await broker.dead_letters.list(count=2)
    rest = await broker.dead_letters.list(count=10, after=first[-1].id)
    assert [letter.payload for letter in first + rest] == [b"%d" % n for n in range(5)]


async def test_an_expired_lease_is_taken_over_by_a_live_worker(new_broker, raw_redis):
    broker = await new_broker(lease_s=1.0)
    await broker.create_groups()
    await broker.kick(message(b"orphan"))
    # a consumer that takes the message and dies: it never heartbeats or acknowledges
    stream = broker.keys.streams[0]
    taken = raw_redis.xreadgroup("taskq", "dead-worker", {stream: ">"}, count=1)
    assert taken[0][1][0][1] == {b"m": b"orphan"}
    started = time.monotonic()
    (item,) = await take(broker, 1)
    assert item.data == b"orphan"
    assert time.monotonic() - started >= 0.5, "taken over before the lease expired"
    await item.ack()  # type: ignore[misc]
    assert pending(raw_redis, broker) == 0


async def test_a_held_message_keeps_its_lease_while_its_worker_lives(new_broker):
    holder = await new_broker(lease_s=1.0)
    other = await new_broker(lease_s=1.0)
    await holder.kick(message(b"slow"))
    (item,) = await take(holder, 1)
    # 3.5 leases without an acknowledgement: the heartbeat must keep the message with holder
    assert await nothing_comes(other, 3.5), "a message still held was handed to a second worker"
    await item.ack()  # type: ignore[misc]
    assert await nothing_comes(other, 1.5)


async def test_a_message_delivered_too_often_goes_to_the_dead_letters(new_broker, raw_redis):
    broker = await new_broker(lease_s=0.3, max_deliveries=2)
    await broker.create_groups()
    await broker.kick(message(b"kills its worker"))
    await _delivered_twice_to_dying_consumers(broker, raw_redis)
    assert await nothing_comes(broker, 1.0)
    (letter,) = await broker.dead_letters.list()
    assert letter.payload == b"kills its worker"
    assert "delivered 2 times" in letter.reason
    assert letter.deliveries == 2
    assert pending(raw_redis, broker) == 0


async def test_a_message_dead_lettered_after_max_deliveries_is_recorded_as_rejected(
    redis_url, redis_prefix, raw_redis
):
    store = InMemoryEventStore()
    broker = RedisStreamBroker(redis_url, key_prefix=redis_prefix, lease_s=0.3, max_deliveries=2)
    broker.with_event_store(store).is_worker_process = True
    await broker.startup()
    try:
        await broker.create_groups()
        await broker.kick(broker.formatter.dumps(TaskiqMessage("dead-task", "tasks:crash")))
        await _delivered_twice_to_dying_consumers(broker, raw_redis)
        assert await nothing_comes(broker, 1.0)
        assert broker.event_recorder is not None
        await broker.event_recorder.flush()
        (event,) = await store.task_events("dead-task")
        assert (event.kind, event.task_name) == (EventKind.REJECTED, "tasks:crash")
        assert event.error_type == "MaxDeliveriesExceeded"
        assert "delivered 2 times" in (event.error_message or "")
    finally:
        await broker.shutdown()


async def _delivered_twice_to_dying_consumers(broker: RedisStreamBroker, raw_redis) -> None:
    """Deliver the queued message to two consumers that die with it, then let its lease end."""
    stream = broker.keys.streams[0]
    raw_redis.xreadgroup("taskq", "dead-1", {stream: ">"}, count=1)  # delivery 1
    (entry_id,) = [p["message_id"] for p in raw_redis.xpending_range(stream, "taskq", "-", "+", 5)]
    raw_redis.xclaim(stream, "taskq", "dead-2", 0, [entry_id])  # delivery 2, dies too
    lease_ms = broker.lease_s * 1000
    await eventually(
        lambda: all(
            held["time_since_delivered"] > lease_ms
            for held in raw_redis.xpending_range(stream, "taskq", "-", "+", 5)
        ),
        what="the lease of the dead consumers to end",
    )


async def test_a_unique_task_dead_lettered_after_max_deliveries_frees_its_key(
    redis_url, redis_prefix, raw_redis
):
    # its task ended for good, as when a worker rejects it: a later unique kiq must send
    # a new task instead of returning the handle of one that will never have a result
    broker = RedisStreamBroker(redis_url, key_prefix=redis_prefix, lease_s=0.3, max_deliveries=2)
    broker.with_unique_store(RedisUniqueStore(redis_url, key_prefix=redis_prefix))

    @broker.task
    async def crash() -> None: ...

    await broker.startup()
    try:
        await broker.create_groups()
        first = await crash.kicker().with_unique(ttl=600).kiq()
        await _delivered_twice_to_dying_consumers(broker, raw_redis)
        assert await nothing_comes(broker, 1.0)
        assert await broker.dead_letters.count() == 1

        async def sends_a_new_task() -> bool:
            again = await crash.kicker().with_unique(ttl=600).kiq()
            return again.task_id != first.task_id

        await eventually(sends_a_new_task, timeout=10)
    finally:
        await broker.shutdown()


async def test_shutdown_hands_back_what_the_worker_held(new_broker, redis_url, redis_prefix):
    leaving = RedisStreamBroker(redis_url, key_prefix=redis_prefix, batch_size=20)
    leaving.is_worker_process = True
    await leaving.startup()
    for n in range(10):
        await leaving.kick(message(b"%d" % n))
    (started,) = await take(leaving, 1)  # read all 10 in one batch, started one, acked none
    await leaving.shutdown()
    staying = await new_broker(lease_s=60)  # so nothing comes back through a lease
    received = await take(staying, 10, timeout=10)
    assert sorted(int(m.data) for m in received) == list(range(10))
    assert started.data in {m.data for m in received}


async def test_a_listen_still_starting_at_shutdown_does_not_begin(new_broker, monkeypatch):
    # a listen() whose start (creating the consumer group) outlives a shutdown must end, not
    # start consuming on a connection it opens again
    broker = await new_broker()
    creating, finish = asyncio.Event(), asyncio.Event()
    create_groups = broker.create_groups

    async def slow_create_groups() -> None:
        creating.set()
        await finish.wait()
        await create_groups()

    monkeypatch.setattr(broker, "create_groups", slow_create_groups)

    async def consume() -> None:
        async for _ in broker.listen():
            pass

    listening = asyncio.create_task(consume())
    await creating.wait()
    await broker.shutdown()
    finish.set()
    done, _ = await asyncio.wait({listening}, timeout=5)
    listening.cancel()
    assert done, "listen() went on after shutdown"
    assert not broker._consumers


async def test_delayed_messages_wait_and_are_moved_once_by_many_workers(new_broker):
    client = await new_broker(worker=False)
    workers = [await new_broker(delay_check_interval_s=0.05) for _ in range(3)]
    received: list[bytes] = []
    arrived: dict[bytes, float] = {}
    due: dict[bytes, float] = {}

    async def consume(worker: RedisStreamBroker) -> None:
        async for item in worker.listen():
            body = bytes(item.data)  # type: ignore[arg-type]
            received.append(body)
            arrived.setdefault(body, time.monotonic())
            await item.ack()  # type: ignore[misc]

    consumers = [asyncio.create_task(consume(worker)) for worker in workers]
    await asyncio.sleep(0.2)
    await client.kick(message(b"now"))
    for n in range(200):
        body = b"%d" % n
        due[body] = time.monotonic() + 1.0
        await client.kick(message(body, delay=1.0))
    await eventually(lambda: len(received) >= 201, 20, what="every delayed message")
    await asyncio.sleep(0.5)  # a message moved twice would arrive by now
    await cancel_until_done(*consumers)
    early = [body for body, when in due.items() if arrived[body] < when - 0.05]
    assert not early, f"{len(early)} delayed messages came before they were due"
    assert sorted(received[1:], key=int) == [b"%d" % n for n in range(200)], "moved twice or lost"


async def test_priority_backlog_is_read_highest_first_with_clamping(new_broker):
    broker = await new_broker(priority_levels=4)
    sent = [("low", None), ("top", 3), ("over", 99), ("neg", -5), ("mid", "2"), ("one", 1.0)]
    for body, priority in sent:
        labels = {} if priority is None else {"priority": priority}
        await broker.kick(message(body.encode(), **labels))
    received = [bytes(m.data) for m in await take(broker, len(sent))]  # type: ignore[arg-type]
    # levels: top 3, over 3 (clamped), mid 2, one 1 (int), low 0, neg 0 (clamped); FIFO within
    assert received == [b"top", b"over", b"mid", b"one", b"low", b"neg"]


async def test_a_worker_runs_once_what_it_claims_back_from_itself(new_broker, raw_redis):
    broker = await new_broker(reclaim_interval_s=0.001, block_ms=50)
    await broker.kick(message(b"once"))
    messages = broker.listen()
    first = await messages.__anext__()
    stream = broker.keys.streams[0]
    (entry,) = raw_redis.xpending_range(stream, "taskq", "-", "+", 10)
    # its lease lapsed while it ran (heartbeats lost in an outage, say): the next look for
    # expired leases claims it, for this very consumer
    raw_redis.xclaim(
        stream, "taskq", entry["consumer"], 0, [entry["message_id"]], idle=3_600_000, justid=True
    )
    await broker.kick(message(b"next"))
    second = await messages.__anext__()
    assert second.data == b"next", "a message still running was yielded a second time"
    await asyncio.gather(first.ack(), second.ack())  # type: ignore[misc]
    await messages.aclose()


async def test_a_message_dead_lettered_while_it_ran_loses_its_dead_letter_when_acked(
    new_broker, raw_redis, caplog
):
    broker = await new_broker(max_deliveries=1, reclaim_interval_s=0.001, block_ms=50)
    for body in (b"ran", b"kept"):
        await broker.kick(message(body))
    messages = broker.listen()
    ran, kept = await messages.__anext__(), await messages.__anext__()
    stream = broker.keys.streams[0]
    # both leases lapsed while they ran (heartbeats lost in an outage, say)
    for entry in raw_redis.xpending_range(stream, "taskq", "-", "+", 10):
        raw_redis.xclaim(
            stream,
            "taskq",
            entry["consumer"],
            0,
            [entry["message_id"]],
            idle=3_600_000,
            justid=True,
        )
    # another worker's look for expired leases finds them delivered max_deliveries times
    other = broker.listen()
    waiting = asyncio.ensure_future(other.__anext__())
    await eventually(lambda: raw_redis.xlen(broker.keys.dead_letters) == 2)
    with caplog.at_level(logging.WARNING, logger="taskq.redis"):
        await ran.ack()  # type: ignore[misc]
    (letter,) = await broker.dead_letters.list()
    assert letter.payload == b"kept", "the dead letter of a message that ran to its ack stayed"
    assert "ran to their acknowledgement after their lease had lapsed" in caplog.text
    await kept.reject("failed after all")  # type: ignore[misc]
    await cancel_until_done(waiting)
    await asyncio.gather(messages.aclose(), other.aclose())


async def test_a_released_message_dropped_late_leaves_its_next_delivery_alone(
    new_broker, raw_redis
):
    broker = await new_broker(lease_s=0.3, reclaim_interval_s=0.05, block_ms=50)
    await broker.kick(message(b"again"))
    messages = broker.listen()
    first = await messages.__anext__()
    await first.release()  # type: ignore[misc]
    second = await messages.__anext__()  # the same entry, delivered again to this consumer
    assert second.data == b"again"
    (consumer,) = broker._consumers
    # the first delivery's message outlives its release (a traceback's reference cycle, say)
    del first
    gc.collect()
    await asyncio.sleep(0)  # a dropped message's release is scheduled: let it start
    await asyncio.gather(*consumer._releasing)  # and finish, if one started
    (entry,) = raw_redis.xpending_range(broker.keys.streams[0], "taskq", "-", "+", 10)
    assert entry["consumer"] == consumer.name.encode(), "the running delivery was released"
    await second.ack()  # type: ignore[misc]
    await messages.aclose()


async def test_what_an_ended_listen_handed_back_is_not_called_a_lost_lease(new_broker, caplog):
    broker = await new_broker()
    for n in range(5):
        await broker.kick(message(b"%d" % n))
    messages = broker.listen()
    first = await messages.__anext__()
    (consumer,) = broker._consumers
    await messages.aclose()  # the other 4 are handed back; the first stays held, unsettled
    with caplog.at_level(logging.WARNING, logger="taskq.redis"):
        rest = await take(broker, 4)
        await consumer.heartbeat()  # the first listen()'s consumer renews what it holds
    assert "The lease of" not in caplog.text  # it said 4 leases expired, "may run twice"
    await asyncio.gather(first.ack(), *(m.ack() for m in rest))  # type: ignore[misc]


async def test_the_stream_cap_applies_to_sends_also_when_set_later(new_broker, raw_redis):
    broker = await new_broker(worker=False)
    stream = broker.keys.streams[0]
    for n in range(250):
        await broker.kick(message(b"%d" % n))
    assert raw_redis.xlen(stream) == 250  # no cap
    broker.max_stream_length = 1
    await broker.kick(message(b"capped"))
    # MAXLEN ~ trims whole nodes of the stream (100 entries each by default)
    assert raw_redis.xlen(stream) < 250
    assert raw_redis.xrevrange(stream, count=1)[0][1] == {b"m": b"capped"}


async def test_labels_that_are_not_numbers_are_refused(new_broker):
    broker = await new_broker(worker=False)
    with pytest.raises(InvalidLabelError, match="priority"):
        await broker.kick(message(b"x", priority="high"))
    with pytest.raises(InvalidLabelError, match="delay"):
        await broker.kick(message(b"x", delay="soon"))


@pytest.mark.parametrize(
    ("label", "value"),
    [("delay", float("inf")), ("delay", float("nan")), ("delay", 1e300), ("priority", 1e300)],
)
async def test_labels_out_of_bounds_are_refused_before_anything_is_parked(
    new_broker, raw_redis, label, value
):
    broker = await new_broker(worker=False)
    with pytest.raises(InvalidLabelError, match=label):
        await broker.kick(message(b"x", **{label: value}))
    assert raw_redis.zcard(broker.keys.delayed) == 0
    assert raw_redis.xlen(broker.keys.streams[0]) == 0


def test_the_label_error_is_taskqs_own() -> None:
    import taskq
    import taskq_redis.errors

    assert InvalidLabelError is taskq.InvalidLabelError is taskq_redis.errors.InvalidLabelError


async def test_an_entry_not_written_by_taskq_is_dead_lettered_and_the_loop_goes_on(
    new_broker, raw_redis, caplog
):
    broker = await new_broker()
    await broker.create_groups()
    raw_redis.xadd(broker.keys.streams[0], {"other": "field"})
    await broker.kick(message(b"good"))
    (item,) = await take(broker, 1)
    assert item.data == b"good"
    (letter,) = await broker.dead_letters.list()
    assert letter.payload is None
    assert "no 'm' field" in letter.reason
    assert "not written by taskq" in caplog.text


async def test_dropped_connections_are_retried_and_nothing_is_lost(
    redis_url, redis_prefix, raw_redis, caplog
):
    name = f"taskq-test-kill-{uuid.uuid4().hex[:8]}"
    worker = RedisStreamBroker(redis_url, key_prefix=redis_prefix, client_name=name)
    worker.is_worker_process = True
    client = RedisStreamBroker(redis_url, key_prefix=redis_prefix)
    await worker.startup()
    await client.startup()
    received: list[int] = []

    async def consume() -> None:
        async for item in worker.listen():
            received.append(int(item.data))
            await item.ack()  # type: ignore[misc]

    consumer = asyncio.create_task(consume())
    caplog.set_level(logging.WARNING, logger="taskq.redis")
    count = 3000
    for n in range(count):
        await client.kick(message(b"%d" % n))
        if n % 1000 == 500:  # once the worker has reconnected (it may be waiting to retry)
            await eventually(lambda: kill_clients(raw_redis, name), what="a connection to drop")
    for _ in range(600):
        if len(received) >= count:
            break
        await asyncio.sleep(0.05)
    await cancel_until_done(consumer)
    await worker.shutdown()
    await client.shutdown()
    assert sorted(received) == list(range(count))
    assert "Lost the connection to Redis" in caplog.text
    assert "Reconnected to Redis" in caplog.text


def kill_clients(raw_redis: Any, name: str) -> int:
    """Drop every connection named ``name``; return how many."""
    ids = [c["id"] for c in raw_redis.client_list() if c.get("name") == name]
    for client_id in ids:
        raw_redis.client_kill_filter(_id=client_id)
    return len(ids)


async def test_an_unreachable_redis_fails_sends_and_startup_with_typed_errors():
    broker = RedisStreamBroker("redis://127.0.0.1:1/0", send_timeout_s=0.3)
    with pytest.raises(SendUnavailableError, match="did not answer"):
        await broker.kick(message(b"x"))
    with pytest.raises(RedisUnavailableError, match="does not answer"):
        await broker.startup()
    with pytest.raises(RedisUnavailableError):
        await broker.dead_letters.count()
    await broker.shutdown()


async def test_a_redis_that_stops_answering_fails_sends_and_stalls_no_worker(
    redis_url, redis_prefix, raw_redis
):
    async with relayed(redis_url) as relay:
        options: dict[str, Any] = {"key_prefix": redis_prefix, "socket_timeout": 1}
        client = RedisStreamBroker(relay.url, send_timeout_s=1.5, **options)
        worker = RedisStreamBroker(relay.url, block_ms=100, **options)
        worker.is_worker_process = True
        await client.startup()
        await worker.startup()
        await client.kick(message(b"before"))
        (first,) = await take(worker, 1)
        relay.hang()
        with pytest.raises(SendUnavailableError, match="did not answer"):
            await client.kick(message(b"lost"))  # no reply: not known to be sent
        relay.restore()
        await first.ack()  # type: ignore[misc]
        await client.kick(message(b"after"))
        received: list[bytes] = []
        async for item in worker.listen():  # the read that met the hang was retried
            received.append(bytes(item.data))
            await item.ack()  # type: ignore[misc]
            if received[-1] == b"after":
                break
        await client.shutdown()
        await worker.shutdown()
    assert {b"lost", b"after"} <= set(received)  # Redis ran the send whose reply was lost


def test_options_are_checked_and_capabilities_declared():
    assert RedisStreamBroker.capabilities == {
        Capability.ACKS,
        Capability.REJECT,
        Capability.REDELIVERY,
        Capability.DELAY,
        Capability.PRIORITY,
        Capability.LOAD_BALANCING,
        Capability.CROSS_PROCESS,
        Capability.INSPECT,
        Capability.BATCH_SEND,
    }
    with pytest.raises(ValueError, match="not a Redis URL"):
        RedisStreamBroker("http://localhost")
    with pytest.raises(ValueError, match="lease_s"):
        RedisStreamBroker(lease_s=0)
    with pytest.raises(ValueError, match="heartbeat_interval_s"):
        RedisStreamBroker(lease_s=5, heartbeat_interval_s=5)
    for lease_s in (1e300, math.inf, math.nan, 0.0, -1.0, 0.0001, 86_401.0):
        with pytest.raises(ValueError, match=r"lease_s must be 0\.001 to 86400 seconds"):
            RedisStreamBroker(lease_s=lease_s)
    for name in (
        "heartbeat_interval_s",
        "reclaim_interval_s",
        "delay_check_interval_s",
        "reconnect_max_delay_s",
        "send_timeout_s",
    ):
        for value in (1e300, math.inf, math.nan, 0.0, -1.0):
            with pytest.raises(ValueError, match=f"{name} must be more than 0 and at most 86400"):
                RedisStreamBroker(lease_s=86_400, **{name: value})
    for block_ms in (10**20, 0, 1.5, math.nan):  # 1.5 was taken; Redis refuses it at each read
        with pytest.raises(ValueError, match="block_ms must be an integer from 1 to 86400000"):
            RedisStreamBroker(block_ms=block_ms)
    assert RedisStreamBroker(lease_s=86_400, send_timeout_s=86_400).lease_ms == 86_400_000
    for levels in (0, 101, 2.5):
        with pytest.raises(ValueError, match="priority_levels must be an integer from 1 to 100"):
            RedisStreamBroker(priority_levels=levels)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisStreamBroker(decode_responses=True)
    import taskq

    assert taskq.RedisStreamBroker is RedisStreamBroker
    broker = RedisStreamBroker(lease_s=9, key_prefix="p", queue_name="q", priority_levels=2)
    assert broker.heartbeat_interval_s == 3
    assert broker.keys.streams == ("p:q:p0", "p:q:p1")
    assert broker.keys.dead_letters == "p:q:dead-letters"


def test_the_settings_are_one_checked_options_object():
    broker = RedisStreamBroker(lease_s=9)
    assert broker.options.lease_s == broker.lease_s == 9
    assert broker.lease_ms == broker.options.lease_ms == 9000
    broker.send_timeout_s = 0.5
    assert broker.options.send_timeout_s == 0.5
    with pytest.raises(ValueError, match="batch_size"):
        broker.batch_size = 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        broker.options.lease_s = 1  # type: ignore[misc]


async def test_a_consumer_group_lost_with_its_stream_is_created_again(
    new_broker, raw_redis, caplog
):
    broker = await new_broker()
    received: list[bytes] = []

    async def consume() -> None:
        async for item in broker.listen():
            received.append(bytes(item.data))  # type: ignore[arg-type]
            await item.ack()  # type: ignore[misc]

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    raw_redis.delete(*broker.keys.streams)  # as if Redis restarted without its data
    await asyncio.sleep(0.1)
    raw_redis.xadd(broker.keys.streams[0], {"m": b"before the group is back"})
    for _ in range(200):
        if received:
            break
        await asyncio.sleep(0.05)
    await cancel_until_done(consumer)
    assert received == [b"before the group is back"]
    assert "is gone" in caplog.text


async def test_a_worker_that_lost_its_lease_drops_what_it_had_not_started(
    new_broker, raw_redis, caplog
):
    broker = await new_broker(lease_s=5, heartbeat_interval_s=0.2, batch_size=5)
    for n in range(5):
        await broker.kick(message(b"%d" % n))
    messages = broker.listen()
    first = await messages.__anext__()  # the other 4 wait in this worker's buffer
    stream = broker.keys.streams[0]
    ids = [p["message_id"] for p in raw_redis.xpending_range(stream, "taskq", "-", "+", 10)]
    raw_redis.xclaim(stream, "taskq", "thief", 0, ids)  # another worker took them all over
    await eventually(lambda: "The lease of" in caplog.text, what="a heartbeat to find out")
    assert "The lease of 5 message(s) expired" in caplog.text
    assert "4 not started yet" in caplog.text
    assert await nothing_comes(broker, 0.5), "a message another worker holds came here too"
    await first.ack()  # type: ignore[misc]


async def test_the_delayed_mover_stops_on_its_event_even_if_a_cancel_is_lost(new_broker):
    # redis-py can swallow a cancellation that arrives as a command completes; shutdown must
    # not then wait forever for the mover
    broker = await new_broker(delay_check_interval_s=0.05)
    stop = asyncio.Event()
    mover = asyncio.create_task(
        move_due_forever(broker.options, broker.scripts, broker.reconnector, stop)
    )
    await asyncio.sleep(0.2)
    stop.set()  # and no cancel()
    await asyncio.wait_for(mover, 5)


async def test_a_listen_cancelled_while_it_starts_ends(new_broker):
    # before Python 3.12, redis-py's asyncio.wait_for around each write swallows a
    # cancellation that arrives as the write completes: cancelled at each turn of the event
    # loop in its start (groups, memory policy, first read), every listen() must end
    for turns in range(40):
        broker = await new_broker()
        await broker.kick(message(b"waiting"))  # a read that returns at once: the loop runs

        async def consume(broker: RedisStreamBroker = broker) -> None:
            async for _ in broker.listen():
                pass

        listening = asyncio.create_task(consume())
        for _ in range(turns):
            await asyncio.sleep(0)
        listening.cancel()
        done, _ = await asyncio.wait({listening}, timeout=3)
        assert done, f"listen() went on after a cancel {turns} turns into its start"
        assert listening.cancelled()
        await broker.shutdown()


@pytest.mark.parametrize(
    "queue_name", ["cancelled", "unique", "result", "progress", "unique:emails", "events:name"]
)
def test_a_queue_name_whose_keys_other_stores_use_is_refused(queue_name: str) -> None:
    # a queue "cancelled" has its stream at {prefix}:cancelled:p0, the key the cancellation
    # store would overwrite with the reason when task "p0" is cancelled
    with pytest.raises(ValueError, match=f"queue_name '{queue_name}' would share Redis keys"):
        RedisStreamBroker(queue_name=queue_name)


def test_queue_names_near_the_reserved_ones_are_taken() -> None:
    for queue_name in ("events", "limits", "dead", "uniqueness", "emails:unique", "taskq"):
        assert RedisStreamBroker(queue_name=queue_name).queue_name == queue_name
