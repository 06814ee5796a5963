"""`AmqpBroker.kick_many` against the real RabbitMQ: one batch, its confirms, its failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from taskq import BrokerMessage, Capability
from taskq.exceptions import BatchSendError
from taskq.testing import eventually
from taskq_amqp import AmqpBroker, SendUnavailableError, UnroutableError

from .conftest import message, ready


def batch(count: int) -> list[BrokerMessage]:
    return [message(b"%d" % n) for n in range(count)]


async def drain(broker: AmqpBroker, expected: int, quiet_s: float = 2.0) -> list[bytes]:
    """Every message of the queue (acknowledged): once ``expected`` distinct ones came, and
    then none for ``quiet_s`` (a duplicate or a stray message would come meanwhile).

    Waiting for the count first: a consumer that starts late on a loaded machine must not
    end the drain before its first message.
    """
    got: list[bytes] = []

    async def collect() -> None:
        async for item in broker.listen():
            got.append(item.data)
            await item.ack()

    collecting = asyncio.create_task(collect())
    await eventually(lambda: len(set(got)) >= expected, timeout=60, what=f"{expected} messages")
    seen = -1
    while seen != len(got):
        seen = len(got)
        await asyncio.sleep(quiet_s)
    collecting.cancel()
    await asyncio.gather(collecting, return_exceptions=True)
    return got


def test_the_broker_declares_batch_send():
    assert Capability.BATCH_SEND in AmqpBroker().capabilities


async def test_a_batch_is_delivered_exactly_once(new_broker):
    broker = await new_broker()
    messages = batch(2000)
    await broker.kick_many(messages)
    assert await ready(broker) == 2000, "kick_many returned before every message was in the queue"
    got = await drain(broker, len(messages))
    assert sorted(got) == sorted(m.message for m in messages)


async def test_an_empty_batch_sends_nothing(new_broker):
    broker = await new_broker()
    await broker.kick_many([])
    assert await ready(broker) == 0


async def test_a_batch_keeps_its_priorities_and_delays(new_broker):
    broker = await new_broker(max_priority=5)
    await broker.kick_many(
        [
            message(b"low", priority=1),
            message(b"later", delay=1.5, priority=5),
            message(b"high", priority=5),
            message(b"middle", priority=3),
        ]
    )
    assert f"{broker.queue_name}.delay.1500" in broker.queue_names()
    assert await ready(broker) == 3, "the delayed message went straight to the work queue"
    got = await drain(broker, 4)
    # the three in the queue come by priority; "later" (priority 5) comes once it is due, before
    # or after them as the consumer happens to start: that it waits is the count of 3 above
    assert [body for body in got if body != b"later"] == [b"high", b"middle", b"low"]
    assert got.count(b"later") == 1


async def test_a_bad_label_refuses_the_whole_batch_before_sending(new_broker):
    broker = await new_broker()
    messages = [message(b"fine"), message(b"bad", delay="soon")]
    with pytest.raises(BatchSendError) as refused:
        await broker.kick_many(messages)
    assert refused.value.sent_ids == ()
    assert refused.value.unsent_ids == tuple(m.task_id for m in messages)
    assert await ready(broker) == 0


@pytest.mark.parametrize("admin", ["rabbit_admin", "management_api"])
async def test_messages_rabbitmq_refuses_are_the_unsent_ones(
    request, amqp_url, queue_name, new_broker, admin
):
    """A full queue that rejects publishes (a policy) nacks the end of the batch."""
    rabbit = request.getfixturevalue(admin)
    policy = f"{queue_name}-full"
    await asyncio.to_thread(
        rabbit.set_policy,
        policy,
        f"^{queue_name}$",
        {"max-length": 5, "overflow": "reject-publish"},
    )
    try:
        broker = await new_broker(worker=False)  # declares the queue under the policy
        messages = batch(12)
        with pytest.raises(BatchSendError) as failed:
            await broker.kick_many(messages)
    finally:
        await asyncio.to_thread(rabbit.clear_policy, policy)
    ids = [m.task_id for m in messages]
    assert failed.value.sent_ids == tuple(ids[:5])
    assert failed.value.unsent_ids == tuple(ids[5:])
    assert "5 of the batch's 12 messages were sent" in str(failed.value)
    assert "RabbitMQ refused the message" in str(failed.value)
    assert await drain(await new_broker(), 5) == [m.message for m in messages[:5]]


async def test_a_connection_lost_part_way_sends_the_unconfirmed_again(new_broker):
    broker = await new_broker(worker=False)
    publish_many = broker.publisher.publish_many
    attempts = 0

    async def cut_while_confirms_are_due(publications: Any, confirmed: Any) -> Any:
        nonlocal attempts
        attempts += 1
        publishing = asyncio.ensure_future(publish_many(publications, confirmed))
        if attempts == 1:
            channel = await broker.publisher.channel()
            await eventually(lambda: len(channel.confirmations) > 0, interval=0.001)
            connection = await broker.connection.connection()
            await connection.close()
        return await publishing

    broker.publisher.publish_many = cut_while_confirms_are_due
    messages = batch(3000)
    await broker.kick_many(messages)
    assert attempts == 2, "the batch was not published again on a new connection"
    got = await drain(await new_broker(), len(messages))
    assert set(got) == {m.message for m in messages}, "a message of the batch is missing"


async def test_a_batch_without_rabbitmq_is_unsent_after_send_timeout():
    broker = AmqpBroker("amqp://guest:guest@127.0.0.1:1/", send_timeout_s=0.3)
    messages = batch(3)
    with pytest.raises(BatchSendError) as failed:
        await broker.kick_many(messages)
    assert failed.value.sent_ids == ()
    assert failed.value.unsent_ids == tuple(m.task_id for m in messages)
    assert isinstance(failed.value.__cause__, SendUnavailableError)
    await broker.shutdown()


async def test_the_management_api_closes_a_connection_the_broker_then_reopens(
    management_api, amqp_url, queue_name
):
    """The management API the tests fall back on where ``rabbitmqctl`` is missing (CI)."""
    name = f"{queue_name}-connection"
    broker = AmqpBroker(f"{amqp_url}?name={name}", queue_name)
    await broker.startup()
    try:
        closing = lambda: asyncio.to_thread(management_api.close_connections, name)  # noqa: E731
        assert await eventually(closing, timeout=30, what="the connection listed and closed") == 1
        await eventually(lambda: not broker.connection.is_open, timeout=30)
        await broker.kick_many(batch(3))  # on a new connection
        assert await ready(broker) == 3
    finally:
        await broker.delete_queues()
        await broker.shutdown()


async def test_a_batch_to_a_deleted_queue_is_unsent(new_broker):
    broker = await new_broker(worker=False)
    await broker.kick_many(batch(2))
    await broker.delete_queues()
    messages = batch(3)
    with pytest.raises(BatchSendError) as failed:
        await broker.kick_many(messages)
    assert failed.value.sent_ids == ()
    assert failed.value.unsent_ids == tuple(m.task_id for m in messages)
    assert isinstance(failed.value.__cause__, UnroutableError)
