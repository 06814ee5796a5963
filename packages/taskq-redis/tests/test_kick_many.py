"""`RedisStreamBroker.kick_many` against a real Redis: one round trip, labels, partial failures."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from taskq import BrokerMessage
from taskq.exceptions import BatchSendError
from taskq_redis import InvalidLabelError, RedisStreamBroker, SendUnavailableError
from taskq_redis.testing import relayed, take


def message(body: bytes, **labels: Any) -> BrokerMessage:
    return BrokerMessage(uuid.uuid4().hex, "test:raw", body, labels)


def bodies(messages: list[Any]) -> list[bytes]:
    """The bytes of messages sent (`BrokerMessage`) or received (`AckableMessage`)."""
    return [bytes(m.message if isinstance(m, BrokerMessage) else m.data) for m in messages]


def server_ms(raw_redis: Any) -> int:
    seconds, micros = raw_redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_a_batch_arrives_once_in_order_with_priorities_and_delays(new_broker, raw_redis):
    client = await new_broker(worker=False, priority_levels=4)
    worker = await new_broker(priority_levels=4, delay_check_interval_s=0.05)
    plain = [message(b"p%d" % n) for n in range(2500)]  # more than one script call
    urgent = [message(b"u%d" % n, priority=3) for n in range(3)]
    clamped = message(b"clamped", priority=99)
    later = [message(b"d%d" % n, delay=0.5) for n in range(5)]
    before_ms = server_ms(raw_redis)
    await client.kick_many([*plain[:1000], *urgent, *later, clamped, *plain[1000:]])
    after_ms = server_ms(raw_redis)

    assert raw_redis.xlen(client.keys.streams[0]) == len(plain)
    assert raw_redis.xlen(client.keys.streams[3]) == len(urgent) + 1
    due = [score for _, score in raw_redis.zrange(client.keys.delayed, 0, -1, withscores=True)]
    assert len(due) == len(later)
    assert all(before_ms + 500 <= score <= after_ms + 500 for score in due), "delay not honoured"
    got = await take(worker, len(plain) + len(urgent) + 1)
    # the backlog comes highest level first, in batch order within a level
    assert bodies(got) == [*bodies(urgent), b"clamped", *bodies(plain)]
    delayed = await take(worker, len(later))
    assert sorted(bodies(delayed)) == sorted(bodies(later))
    await asyncio.gather(*(m.ack() for m in [*got, *delayed]))  # type: ignore[misc]
    with pytest.raises(asyncio.TimeoutError):
        await take(worker, 1, timeout=1.0)  # nothing was sent twice


async def test_messages_redis_refuses_are_named_and_the_rest_are_sent(new_broker, raw_redis):
    broker = await new_broker(worker=False, priority_levels=4)
    raw_redis.set(broker.keys.streams[2], b"not a stream")  # XADD there fails: WRONGTYPE
    batch = [message(b"%d" % n, priority=2 if n % 3 == 0 else 0) for n in range(1500)]

    with pytest.raises(BatchSendError) as caught:
        await broker.kick_many(batch)

    error = caught.value
    refused = [m.task_id for m in batch if m.labels["priority"] == 2]
    assert error.unsent_ids == tuple(refused)
    assert error.sent_ids == tuple(m.task_id for m in batch if m.task_id not in refused)
    assert "WRONGTYPE" in str(error)
    entries = raw_redis.xrange(broker.keys.streams[0])
    assert [fields[b"m"] for _, fields in entries] == [
        m.message for m in batch if m.task_id not in refused
    ]


async def test_a_bad_label_sends_nothing_of_the_batch(new_broker, raw_redis):
    broker = await new_broker(worker=False)
    batch = [message(b"a"), message(b"b", delay="soon"), message(b"c")]

    with pytest.raises(BatchSendError) as caught:
        await broker.kick_many(batch)

    assert caught.value.sent_ids == ()
    assert caught.value.unsent_ids == tuple(m.task_id for m in batch)
    assert isinstance(caught.value.__cause__, InvalidLabelError)
    assert raw_redis.exists(broker.keys.streams[0]) == 0 or (
        raw_redis.xlen(broker.keys.streams[0]) == 0
    )


async def test_an_empty_batch_sends_nothing(new_broker, raw_redis):
    broker = await new_broker(worker=False)
    await broker.kick_many([])
    assert raw_redis.xlen(broker.keys.streams[0]) == 0


async def test_an_unreachable_redis_leaves_the_whole_batch_unsent():
    broker = RedisStreamBroker("redis://127.0.0.1:1/0", send_timeout_s=0.2)
    batch = [message(b"x"), message(b"y")]
    with pytest.raises(BatchSendError) as caught:
        await broker.kick_many(batch)
    assert caught.value.sent_ids == ()
    assert caught.value.unsent_ids == tuple(m.task_id for m in batch)
    assert isinstance(caught.value.__cause__, SendUnavailableError)
    await broker.shutdown()


async def test_a_connection_lost_mid_batch_names_the_unconfirmed_messages_unsent(
    redis_url, redis_prefix, raw_redis
):
    async with relayed(redis_url) as relay:
        broker = RedisStreamBroker(relay.url, key_prefix=redis_prefix, send_timeout_s=0.2)
        # Redis runs the script call, its answer is lost (a NOSCRIPT refusal goes through, so
        # that the call is made again with the script loaded)
        relay.cut_on_reply(b"EVALSHA", passing=(b"-NOSCRIPT",))
        batch = [message(b"%d" % n) for n in range(10)]
        with pytest.raises(BatchSendError) as caught:
            await broker.kick_many(batch)
        await broker.shutdown()
    assert caught.value.sent_ids == ()
    assert caught.value.unsent_ids == tuple(m.task_id for m in batch)
    # Redis has them: "unsent" means "not known to be sent"
    assert raw_redis.xlen(broker.keys.streams[0]) == len(batch)
