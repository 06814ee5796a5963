"""RabbitMQ behind a relay that goes silent: no byte either way, the connection left open."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from taskq.exceptions import BatchSendError
from taskq.testing import eventually
from taskq_amqp import AmqpBroker, SendUnavailableError
from taskq_amqp.connection import AmqpConnection
from taskq_amqp.testing import delete_queues_async, relayed, unique_queue_name

from .conftest import message, ready

#: Generous: a kick bounded by its send_timeout_s of 1 s returns long before.
HANG_LIMIT_S = 60
#: Python 3.10 cannot tell aiormq's cancellation of a reply from a cancellation of the task.
tells_cancellations_apart = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="Python 3.10 keeps such a CancelledError"
)


async def test_a_kick_to_a_silent_server_raises_after_send_timeout(amqp_url):
    """The heartbeat notices a silent server after three heartbeats (3 minutes by default):
    until then the kick waited for its confirm, whatever its send_timeout_s."""
    queue = unique_queue_name()
    async with relayed(amqp_url) as relay:
        broker = AmqpBroker(relay.url, queue, send_timeout_s=1)
        await broker.startup()
        try:
            relay.pause()
            with pytest.raises(SendUnavailableError, match="did not answer for 1 s"):
                await asyncio.wait_for(broker.kick(message(b"x")), HANG_LIMIT_S)
            relay.restore()
            await broker.kick(message(b"y"))  # the connection answers again
        finally:
            relay.restore()
            await broker.shutdown()
            await delete_queues_async(amqp_url, broker.queue_names())


async def test_a_kick_that_timed_out_leaves_its_silent_connection_to_the_next(amqp_url, caplog):
    """Every kick waited its whole send_timeout_s on the silent connection until the heartbeat
    closed it (three heartbeats: minutes by default), though a new one would have worked."""
    queue = unique_queue_name()
    async with relayed(amqp_url) as relay:
        broker = AmqpBroker(relay.url, queue, send_timeout_s=1)
        await broker.startup()
        try:
            relay.stall()  # the path of the open connection forgets it; a new one gets through
            with pytest.raises(SendUnavailableError, match="did not answer for 1 s"):
                await asyncio.wait_for(broker.kick(message(b"x")), HANG_LIMIT_S)
            assert "the next call opens a new connection" in caplog.text
            await asyncio.wait_for(broker.kick(message(b"y")), 0.9)
            assert relay.accepted == 2
            await eventually(lambda: ready(broker), timeout=10)
        finally:
            await broker.shutdown()
            await delete_queues_async(amqp_url, broker.queue_names())


@tells_cancellations_apart
async def test_a_kick_cut_off_by_a_heartbeat_timeout_is_sent_again(amqp_url):
    """aiormq cancels the awaited confirm when the heartbeat times out: the kick raised that
    CancelledError (its caller looked cancelled) instead of sending again."""
    queue = unique_queue_name()
    async with relayed(f"{amqp_url.rstrip('/')}/?heartbeat=1") as relay:
        broker = AmqpBroker(relay.url, queue, send_timeout_s=HANG_LIMIT_S)
        await broker.startup()
        try:
            connection = await broker.connection.connection()
            relay.pause()
            kicking = asyncio.ensure_future(broker.kick(message(b"x")))
            await eventually(lambda: connection.is_closed, timeout=HANG_LIMIT_S)
            relay.restore()
            await kicking  # raised CancelledError
            await eventually(lambda: ready(broker), timeout=30)
        finally:
            relay.restore()
            await broker.shutdown()
            await delete_queues_async(amqp_url, broker.queue_names())


@tells_cancellations_apart
async def test_a_reject_cut_off_by_a_heartbeat_timeout_leaves_the_message_to_redeliver(amqp_url):
    """The dead-letter publish of a reject got the same CancelledError, raised into the
    worker's receiver as if its task had been cancelled."""
    queue = unique_queue_name()
    other = AmqpBroker(amqp_url, queue, max_deliveries=None)
    async with relayed(f"{amqp_url.rstrip('/')}/?heartbeat=1") as relay:
        broker = AmqpBroker(relay.url, queue, max_deliveries=None)
        await broker.startup()
        try:
            await broker.kick(message(b"x"))
            item = await anext(aiter(broker.listen()))
            connection = await broker.connection.connection()
            relay.pause()
            rejecting = asyncio.ensure_future(item.reject("ValueError: bad"))
            await eventually(lambda: connection.is_closed, timeout=HANG_LIMIT_S)
            relay.restore()
            await rejecting  # raised CancelledError
            await other.startup()
            again = await asyncio.wait_for(anext(aiter(other.listen())), 30)
            assert again.data == b"x"
            await again.ack()
        finally:
            relay.restore()
            await broker.shutdown()
            await other.shutdown()
            await delete_queues_async(amqp_url, broker.queue_names())


async def test_a_call_that_timed_out_on_an_old_connection_leaves_the_new_one(amqp_url):
    """Kicks that started on a silent connection time out one after another: the first
    gives it up; one timing out after a new connection opened must not give that one up."""
    connection = AmqpConnection(amqp_url, max_delay_s=1.0)
    try:
        old = await connection.connection()
        connection.drop(old, "the first kick timed out")
        new = await connection.connection()
        assert new is not old
        connection.drop(old, "a later kick, sent on the old one, timed out")
        assert await connection.connection() is new
        assert not new.is_closed
    finally:
        await connection.close()


async def test_a_batch_that_timed_out_names_the_messages_confirmed_before_as_sent(amqp_url):
    """The confirmed messages of a batch whose wait timed out were reported unsent: a caller
    sending the unsent ones again sent those twice. (A loaded machine takes seconds to
    publish the batch: the timeout leaves it time to see 100 confirms first.)"""
    queue = unique_queue_name()
    async with relayed(amqp_url) as relay:
        broker = AmqpBroker(relay.url, queue, send_timeout_s=5)
        await broker.startup()
        publish_many = broker.publisher.publish_many
        confirms = 0

        async def silent_after_100_confirms(publications: Any, confirmed: Any) -> Any:
            def counted(position: int) -> None:
                nonlocal confirms
                confirms += 1
                if confirms == 100:
                    relay.stall()
                confirmed(position)

            return await publish_many(publications, counted)

        broker.publisher.publish_many = silent_after_100_confirms  # type: ignore[method-assign]
        messages = [message(b"%d" % n) for n in range(2000)]
        try:
            with pytest.raises(BatchSendError) as failed:
                await asyncio.wait_for(broker.kick_many(messages), HANG_LIMIT_S)
        finally:
            await broker.shutdown()
    sent, unsent = failed.value.sent_ids, failed.value.unsent_ids
    assert len(sent) >= 100
    assert sorted(sent + unsent) == sorted(m.task_id for m in messages)
    reader = AmqpBroker(amqp_url, queue)
    await reader.startup()
    try:
        queued = await ready(reader)
        assert len(sent) <= queued, "a message said sent is not in the queue"
    finally:
        await reader.shutdown()
        await delete_queues_async(amqp_url, reader.queue_names())
