"""One ``listen()`` of an `AmqpBroker`: a channel consuming the work queue, reopened when lost.

RabbitMQ sends at most ``prefetch_count`` unacknowledged messages to the channel (QoS); each
is yielded as an `AckableMessage` whose ``ack`` acknowledges it, ``reject`` dead-letters it with
its reason (published to the dead-letter queue with confirmation, then acknowledged) and
``release`` returns it to the queue. When the connection is lost, RabbitMQ returns every
unacknowledged message to the queue for another consumer; this consumer reconnects (with the
connection's backoff) and goes on, and settling a message of the lost channel does nothing.
When RabbitMQ cancels the consumer (its queue was deleted), it declares the queues again and
consumes on the same channel, where the messages it holds can still be settled.

On a classic queue with ``max_deliveries``, a redelivered message is counted: it is rejected
without requeueing, which makes RabbitMQ dead-letter it into its own queue with the count in its
``x-death`` header, or dead-lettered with its reason once the count passes the limit. The count
is one frame that RabbitMQ applies whole: a consumer that dies while counting leaves the message
once in the queue, never twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any

from taskq.acks import AckableMessage
from taskq.toolkit import await_keeping_cancellation
from taskq_amqp.connection import CONNECTION_ERRORS, FIRST_RETRY_DELAY_S, lost_if_cut_off
from taskq_amqp.errors import UnroutableError
from taskq_amqp.publisher import declare
from taskq_amqp.queues import counted_deliveries

if TYPE_CHECKING:
    from aiormq.abc import AbstractChannel, DeliveredMessage
    from pamqp.commands import Basic

    from taskq_amqp.connection import AmqpConnection
    from taskq_amqp.publisher import Publisher
    from taskq_amqp.queues import Queues

logger = logging.getLogger("taskq.amqp")

#: The reason of a message dead-lettered for being delivered too often.
TOO_MANY_DELIVERIES = "delivered {count} times without an acknowledgement (max_deliveries)"
#: The reason of a message rejected without one.
REJECTED = "rejected (no reason given)"
#: Seconds between two checks that RabbitMQ did not cancel the consumer, with aiormq 6 (on
#: Python 3.10), which tells of a cancel only by dropping the consumer from its channel.
CANCEL_CHECK_S = 1.0


class Consumer:
    """Consumes the work queue on a channel of its own, with ``prefetch_count`` in flight."""

    def __init__(
        self,
        connection: AmqpConnection,
        queues: Queues,
        publisher: Publisher,
        prefetch_count: int,
    ) -> None:
        self.connection = connection
        self.queues = queues
        self.publisher = publisher
        self.prefetch_count = prefetch_count
        self._inbox: asyncio.Queue[DeliveredMessage | None] = asyncio.Queue()
        self._channel: AbstractChannel | None = None
        self._tag: str | None = None
        self._stopped = False
        self._cancelled = False  # RabbitMQ cancelled the consumer: consume again
        self._cancel_watch: asyncio.Task[None] | None = None  # aiormq 6 only

    async def messages(self) -> AsyncIterator[AckableMessage]:
        """Yield the messages of the work queue until `close`."""
        delay = FIRST_RETRY_DELAY_S
        while not self._stopped:
            try:
                # apart: aiormq's calls (asyncio.wait_for before Python 3.12) could swallow a
                # cancellation of this listen(), which would then go on
                channel = await await_keeping_cancellation(
                    self.connection.call("consume the queue", self._consume)
                )
            except CONNECTION_ERRORS:
                return  # closed while reconnecting
            while (delivered := await self._inbox.get()) is not None:
                delay = FIRST_RETRY_DELAY_S  # this channel worked: a new outage starts afresh
                message = await self._admitted(channel, delivered)
                if message is not None:
                    yield message
            if not self._stopped:
                delay = await self._pause(channel, delay)

    async def _pause(self, channel: AbstractChannel, delay: float) -> float:
        """Wait before consuming again, as the consumer was cancelled or its channel closed."""
        if self._cancelled and not channel.is_closed:  # consume again on this channel
            await asyncio.sleep(FIRST_RETRY_DELAY_S)
            return delay
        lost = ConnectionError("the channel closed")  # consume on a new one
        return await self.connection.pause("consume the queue", lost, delay)

    async def _consume(self) -> AbstractChannel:
        channel = self._channel
        if not self._cancelled or channel is None or channel.is_closed:
            channel = await self.connection.channel()
            self._channel = channel
            await channel.basic_qos(prefetch_count=self.prefetch_count)
            channel.closing.add_done_callback(self._on_channel_closed)
            callbacks = getattr(channel, "on_consumer_cancel_callbacks", None)  # aiormq 7
            if callbacks is not None:
                callbacks.add(self._on_cancelled)
        # on a new channel (idempotent), or cancelled: deleted, most likely, declared again
        await declare(channel, self.queues)
        consumed = await channel.basic_consume(self.queues.name, self._on_message)
        self._tag = consumed.consumer_tag
        self._cancelled = False
        if self._stopped and self._tag is not None:  # `stop` came meanwhile: take nothing
            await channel.basic_cancel(self._tag)
        if not hasattr(channel, "on_consumer_cancel_callbacks"):
            self._cancel_watch = asyncio.create_task(self._watch_cancel(channel, self._tag))
        return channel

    def _on_message(self, delivered: DeliveredMessage) -> Coroutine[Any, Any, None]:
        """Hand ``delivered`` to `messages` at once; the coroutine returned does what is left.

        aiormq calls this as the frame arrives and runs the coroutine as a task later: putting
        the message in the inbox here, not in that task, saves the worker one turn of the
        event loop between a delivery and the task's run (and so its acknowledgement).
        """
        if self._stopped:  # arrived after `stop`: straight back to the queue
            return _Settler(self, delivered.channel, delivered).release()
        self._inbox.put_nowait(delivered)
        return _nothing()

    def _on_channel_closed(self, _: Any) -> None:
        self._inbox.put_nowait(None)

    def _on_cancelled(self, cancel: Basic.Cancel) -> None:
        """RabbitMQ cancelled this consumer (its queue was deleted): consume again."""
        self._consumer_cancelled(cancel.consumer_tag)

    async def _watch_cancel(self, channel: AbstractChannel, tag: str | None) -> None:
        """Notice RabbitMQ's cancel where aiormq calls nothing on it (aiormq 6).

        That aiormq only drops the consumer from its channel: checked every `CANCEL_CHECK_S`.
        """
        consumers = getattr(channel, "consumers", None)  # not in aiormq's abstract channel
        if consumers is None:
            return
        while self._tag == tag and not channel.is_closed:
            await asyncio.sleep(CANCEL_CHECK_S)
            if tag not in consumers:
                self._consumer_cancelled(tag)
                return

    def _consumer_cancelled(self, tag: str | None) -> None:
        if tag != self._tag or self._stopped:
            return
        logger.warning(
            "RabbitMQ cancelled the consumer of queue %r (was it deleted?): declaring the "
            "queues again and consuming again",
            self.queues.name,
        )
        self._tag = None
        self._cancelled = True
        self._inbox.put_nowait(None)

    async def _admitted(
        self, channel: AbstractChannel, delivered: DeliveredMessage
    ) -> AckableMessage | None:
        """The message to yield, or None when counting its deliveries settled it here."""
        if channel.is_closed:
            return None  # RabbitMQ returned it to the queue with its channel
        settler = _Settler(self, channel, delivered)
        if delivered.redelivered and self.queues.counts_deliveries:
            await self._count_redelivery(settler)
            return None
        return AckableMessage(delivered.body, settler.ack, settler.reject, settler.release)

    async def _count_redelivery(self, settler: _Settler) -> None:
        headers = settler.delivered.header.properties.headers
        delivered = counted_deliveries(headers, self.queues.name)  # before this redelivery
        limit = self.queues.max_deliveries
        if limit is not None and delivered + 1 > limit:
            await settler.reject(TOO_MANY_DELIVERIES.format(count=delivered))
            return
        await settler.requeue_counted()

    async def stop(self) -> None:
        """Stop receiving (the caller stopped iterating) but let held messages be settled.

        Messages received and not yielded go back to the queue at once; those yielded can
        still be settled until `close`.
        """
        self._stopped = True
        channel = self._channel
        if channel is None or channel.is_closed:
            return
        with contextlib.suppress(*CONNECTION_ERRORS):
            if self._tag is not None:
                await channel.basic_cancel(self._tag)
            while not self._inbox.empty():
                delivered = self._inbox.get_nowait()
                if delivered is not None:
                    await _Settler(self, channel, delivered).release()

    async def close(self) -> None:
        """Stop consuming; RabbitMQ returns the unacknowledged messages to the queue."""
        self._stopped = True
        channel, self._channel = self._channel, None
        self._inbox.put_nowait(None)
        if self._cancel_watch is not None:
            self._cancel_watch.cancel()
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await channel.close()


async def _nothing() -> None:
    """A coroutine with nothing to do (what aiormq runs after a message went to the inbox)."""


class _Settler:
    """Settles one delivery on the channel it came on (nothing once that channel is gone)."""

    __slots__ = ("channel", "consumer", "delivered")

    def __init__(
        self, consumer: Consumer, channel: AbstractChannel, delivered: DeliveredMessage
    ) -> None:
        self.consumer = consumer
        self.channel = channel
        self.delivered = delivered

    @property
    def tag(self) -> int:
        tag = self.delivered.delivery_tag
        assert tag is not None  # a delivery always has one
        return tag

    async def ack(self) -> None:
        if self.channel.is_closed:
            return  # RabbitMQ returned it to the queue with the channel
        with contextlib.suppress(*CONNECTION_ERRORS):
            await self.channel.basic_ack(self.tag, wait=False)

    async def reject(self, reason: str | None = None) -> None:
        if self.channel.is_closed:
            return
        try:
            await lost_if_cut_off(lambda: self._dead_letter(reason or REJECTED))
        except CONNECTION_ERRORS:
            return  # unacknowledged: it comes back once its channel is gone, to be rejected again
        await self.ack()

    async def _dead_letter(self, reason: str) -> None:
        """Publish the message to the dead-letter queue, declared again if it was deleted."""
        publisher = self.consumer.publisher
        try:
            await publisher.dead_letter(self.delivered, reason)
        except UnroutableError:  # the dead-letter queue was deleted; now declared again
            await publisher.dead_letter(self.delivered, reason)

    async def requeue_counted(self) -> None:
        """Reject it without requeueing: RabbitMQ dead-letters it into its own queue, counted."""
        if self.channel.is_closed:
            return
        with contextlib.suppress(*CONNECTION_ERRORS):
            await self.channel.basic_reject(self.tag, requeue=False, wait=False)

    async def release(self) -> None:
        if self.channel.is_closed:
            return
        with contextlib.suppress(*CONNECTION_ERRORS):
            await self.channel.basic_nack(self.tag, requeue=True, wait=False)
