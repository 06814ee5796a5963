"""Messages larger than RabbitMQ's ``max_message_size``: refused with a typed error, alone."""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq
import pytest

from taskq.exceptions import BatchSendError, SendTaskError
from taskq_amqp import MessageTooLargeError

from .conftest import message, ready

#: Over RabbitMQ's default ``max_message_size`` (128 MiB up to 3.13, 16 MiB from 4.0).
TOO_LARGE = bytes((128 << 20) + 1)


async def test_a_message_over_the_servers_limit_raises_message_too_large(new_broker):
    broker = await new_broker(worker=False, send_timeout_s=5)
    with pytest.raises(MessageTooLargeError, match="max_message_size") as refused:
        await broker.kick(message(TOO_LARGE))
    assert isinstance(refused.value, SendTaskError)
    # learned: the next one is refused before it is sent, and smaller ones go through
    with pytest.raises(MessageTooLargeError):
        await broker.kick(message(TOO_LARGE))
    await broker.kick(message(b"small"))
    assert await ready(broker) == 1


async def test_kicks_sharing_the_channel_with_a_too_large_one_are_sent(new_broker):
    broker = await new_broker(worker=False, send_timeout_s=10)
    small = [message(b"%d" % n) for n in range(20)]
    outcomes = await asyncio.gather(
        broker.kick(message(TOO_LARGE)),
        *(broker.kick(m) for m in small),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], MessageTooLargeError)
    assert outcomes[1:] == [None] * len(small)
    assert await ready(broker) == len(small)


async def test_a_too_large_message_of_a_batch_is_the_only_unsent_one(new_broker):
    broker = await new_broker(worker=False, send_timeout_s=10)
    messages = [message(b"a"), message(b"b"), message(TOO_LARGE), message(b"c"), message(b"d")]
    with pytest.raises(BatchSendError) as failed:
        await broker.kick_many(messages)
    ids = [m.task_id for m in messages]
    assert failed.value.unsent_ids == (ids[2],)
    assert failed.value.sent_ids == (ids[0], ids[1], ids[3], ids[4])
    assert isinstance(failed.value.__cause__, MessageTooLargeError)
    assert "max_message_size" in str(failed.value)
    assert await ready(broker) == 4


async def test_too_large_is_learned_when_the_close_cuts_the_publish_off_first(
    new_broker, monkeypatch
):
    # The channel's close wakes the publisher (which cuts off the publishes it still waits
    # on) and the publish itself in no fixed order; here the cut-off always comes first.
    real_publish = aiormq.Channel.basic_publish

    async def sees_the_close_late(self: aiormq.Channel, *args: Any, **kwargs: Any) -> Any:
        publishing = asyncio.ensure_future(real_publish(self, *args, **kwargs))
        publishing.add_done_callback(lambda done: done.cancelled() or done.exception())
        await asyncio.wait([publishing])
        await asyncio.sleep(0)
        return publishing.result()

    monkeypatch.setattr(aiormq.Channel, "basic_publish", sees_the_close_late)
    broker = await new_broker(worker=False, send_timeout_s=10)
    with pytest.raises(MessageTooLargeError, match="max_message_size"):
        await broker.kick(message(TOO_LARGE))
    with pytest.raises(BatchSendError) as failed:
        await broker.kick_many([message(b"a"), message(TOO_LARGE)])
    assert isinstance(failed.value.__cause__, MessageTooLargeError)
    assert await ready(broker) == 1
