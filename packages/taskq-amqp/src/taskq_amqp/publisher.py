"""Sending with publisher confirms: every publish returns once RabbitMQ has the message.

One channel in confirm mode per broker carries every publish (tasks, delayed tasks, dead
letters, redelivery counts); concurrent publishes share it and their confirmations arrive
in flight together. The channel is opened, and the queues declared, on first use and again
after a lost connection. Every publish is ``mandatory``: a message no queue takes (its queue
was deleted since) is returned by RabbitMQ and fails with `UnroutableError` instead of being
confirmed and lost; the next publish declares the queues again.

A message larger than the server's ``max_message_size`` makes RabbitMQ close the channel: it
fails with `MessageTooLargeError`, the other publishes the close cut off are sent again on a new
channel, and the publisher refuses later messages over that size before sending them.

A dead letter is a copy of a message with taskq's headers added. When the message's own headers
(set by whatever client sent it) leave no room for them in one frame, which RabbitMQ answers by
closing the whole connection, the copy keeps the body and taskq's headers and drops the others.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiormq.abc import AbstractChannel
from aiormq.exceptions import ChannelClosed, ChannelInvalidStateError, DeliveryError, PublishError
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from taskq.exceptions import SendTaskError
from taskq_amqp.errors import MessageTooLargeError, UnroutableError
from taskq_amqp.queues import (
    BUCKET_REDECLARE_S,
    DEAD_AT_HEADER,
    DEATHS_HEADER,
    DELIVERIES_HEADER,
    REASON_HEADER,
    Queues,
    counted_deliveries,
)

if TYPE_CHECKING:
    from aiormq.abc import DeliveredMessage

    from taskq_amqp.connection import AmqpConnection

logger = logging.getLogger("taskq.amqp")

#: delivery_mode of a message RabbitMQ writes to disk.
PERSISTENT = 2
#: The headers taskq adds to dead letters, removed when one is replayed.
DEAD_LETTER_HEADERS = (REASON_HEADER, DEAD_AT_HEADER, DELIVERIES_HEADER, DEATHS_HEADER)
#: RabbitMQ's reason for closing a channel on a message over its ``max_message_size``.
TOO_LARGE_REASON = re.compile(r"message size \d+ is larger than configured max size (\d+)")
#: Header of a dead letter whose own headers were dropped: how many there were.
DROPPED_HEADERS_HEADER = "x-taskq-dropped-headers"
#: Bytes a frame adds around its payload (type, channel, size, end marker).
FRAME_OVERHEAD = 8


@dataclass(frozen=True)
class Publication:
    """One message of a batch: its body and properties, and its delay bucket (0: none)."""

    body: bytes
    properties: Basic.Properties
    delay_ms: int = 0


class Publisher:
    """Publishes to a broker's queues through one confirm channel, declaring them first."""

    def __init__(self, connection: AmqpConnection, queues: Queues) -> None:
        self.connection = connection
        self.queues = queues
        self._channel: AbstractChannel | None = None
        self._opening = asyncio.Lock()
        self._buckets: dict[int, float] = {}
        self._waiting: set[asyncio.Task[Any]] = set()
        self._cut: set[asyncio.Task[Any]] = set()
        self._undeclared = False  # a message came back: a queue was deleted
        #: The server's ``max_message_size`` (bytes), once a message over it was refused.
        self.max_message_size: int | None = None
        #: The delay buckets this publisher declared (their names), for cleaning up.
        self.bucket_names: set[str] = set()

    async def channel(self) -> AbstractChannel:
        """The confirm channel, opened with the queues declared if it is not open."""
        channel = self._channel
        if channel is not None and self.connection.holds(channel) and not self._undeclared:
            return channel
        async with self._opening:
            if self._channel is None or not self.connection.holds(self._channel):
                channel = await self.connection.channel(publisher_confirms=True)
                await declare(channel, self.queues)
                self._buckets.clear()
                waiting: set[asyncio.Task[Any]] = set()
                self._waiting = waiting
                channel.closing.add_done_callback(lambda closing: self._cut_off(waiting, closing))
                self._channel = channel
            elif self._undeclared:
                await declare(self._channel, self.queues)
                self._buckets.clear()
            self._undeclared = False
            return self._channel

    def _cut_off(self, waiting: set[asyncio.Task[Any]], closing: asyncio.Future[Any]) -> None:
        """Wake the publishes still waiting for a confirmation on a channel that closed.

        Some versions of aiormq leave them waiting forever; each gets
        ``ChannelInvalidStateError`` instead, and is sent again on a new channel, unless the
        close (learned from here, as this may run before the publishes see it) says it is
        over the server's size limit.
        """
        if not closing.cancelled():
            self._learn_size_limit(closing.exception())
        for task in waiting:
            self._cut.add(task)
            task.cancel()

    async def publish(self, body: bytes, routing_key: str, properties: Basic.Properties) -> None:
        """Publish ``body`` to the queue ``routing_key``; return once RabbitMQ confirmed it.

        Raises:
            UnroutableError: No queue ``routing_key`` exists (RabbitMQ returned the message).
            MessageTooLargeError: ``body`` is over the server's ``max_message_size``.
            SendTaskError: RabbitMQ refused the message (a negative confirmation, or it
                closed the channel on it).
        """
        too_large = self._too_large(len(body))
        if too_large is not None:
            raise too_large
        channel = await self.channel()
        task = asyncio.current_task()
        assert task is not None  # called from a coroutine
        waiting = self._waiting
        waiting.add(task)
        try:
            confirmation = await channel.basic_publish(
                body, routing_key=routing_key, properties=properties, mandatory=True
            )
        except DeliveryError as exc:
            raise self._refused(exc) from exc
        except ChannelClosed as exc:
            raise self._closed_on(exc, len(body)) from exc
        except asyncio.CancelledError:
            if task not in self._cut:
                raise
            self._cut.discard(task)
            if sys.version_info >= (3, 11):
                task.uncancel()
            raise self._too_large(len(body)) or ChannelInvalidStateError(
                "the channel closed before the confirmation"
            ) from None
        finally:
            waiting.discard(task)
        if not isinstance(confirmation, Basic.Ack):
            raise refused(confirmation)

    async def publish_delayed(
        self, body: bytes, delay_ms: int, properties: Basic.Properties
    ) -> None:
        """Publish ``body`` to the delay bucket of ``delay_ms`` (declared when due)."""
        channel = await self.channel()
        await self.publish(body, await self.bucket(channel, delay_ms), properties)

    async def bucket(self, channel: AbstractChannel, delay_ms: int) -> str:
        """The name of the delay bucket of ``delay_ms``, declared on ``channel`` when due."""
        name = self.queues.bucket(delay_ms)
        if (
            time.monotonic() - self._buckets.get(delay_ms, -BUCKET_REDECLARE_S)
            >= BUCKET_REDECLARE_S
        ):
            await channel.queue_declare(
                name, durable=True, arguments=self.queues.bucket_arguments(delay_ms)
            )
            self._buckets[delay_ms] = time.monotonic()
            self.bucket_names.add(name)
        return name

    async def publish_many(
        self, batch: Sequence[Publication], confirmed: Callable[[int], None] | None = None
    ) -> list[BaseException | None]:
        """Publish every message of ``batch``, then await all their confirmations at once.

        Returns one outcome per message, in order: None when RabbitMQ confirmed it, the error
        otherwise (`SendTaskError` for a negative confirmation, `UnroutableError` for a
        message returned as no queue took it, `MessageTooLargeError` for one over the
        server's ``max_message_size``, a connection error when the connection was lost, or
        the channel closed on another message, before its confirmation). Only a failure to
        open the channel or to declare a delay bucket raises: then nothing was published.
        ``confirmed`` is called with the position of each message as RabbitMQ confirms it,
        so that a caller that gives up waiting knows which ones were sent.
        """
        refusals = [self._too_large(len(p.body)) for p in batch]
        if any(refusals):
            positions = [n for n, refusal in enumerate(refusals) if refusal is None]
            sendable = [batch[n] for n in positions]
            tell = None if confirmed is None else lambda n: confirmed(positions[n])
            sent = iter(await self.publish_many(sendable, tell) if sendable else ())
            return [refusal or next(sent) for refusal in refusals]
        channel = await self.channel()
        waiting = self._waiting  # the publishes the close of this channel cuts off
        keys = {
            delay_ms: await self.bucket(channel, delay_ms)
            for delay_ms in {p.delay_ms for p in batch if p.delay_ms}
        }
        keys[0] = self.queues.name
        publishing = [
            asyncio.ensure_future(
                channel.basic_publish(
                    p.body, routing_key=keys[p.delay_ms], properties=p.properties, mandatory=True
                )
            )
            for p in batch
        ]
        waiting.update(publishing)
        if confirmed is not None:
            for position, publish in enumerate(publishing):
                publish.add_done_callback(_on_ack(confirmed, position))
        try:
            outcomes = await asyncio.gather(*publishing, return_exceptions=True)
            closed = channel.is_closed  # its close fails the publishes it cut off, any way
            if any(isinstance(outcome, PublishError) for outcome in outcomes):
                self._undeclared = True
            return [
                self._settled(outcome, len(p.body), closed)
                for p, outcome in zip(batch, outcomes, strict=True)
            ]
        finally:
            waiting.difference_update(publishing)
            self._cut.difference_update(publishing)

    async def dead_letter(self, delivered: DeliveredMessage, reason: str) -> None:
        """Publish a copy of ``delivered`` to the dead-letter queue with ``reason``."""
        properties = delivered.header.properties
        headers = {
            REASON_HEADER: reason,
            DEAD_AT_HEADER: round(time.time() * 1000),
            DELIVERIES_HEADER: counted_deliveries(properties.headers, self.queues.name),
        }
        copy = _copy(properties, headers)
        channel = await self.channel()
        if _header_frame_size(copy, len(delivered.body)) > _frame_max(channel):
            logger.warning(
                "Dead-lettering message %s without its %d headers: with taskq's they would "
                "not fit in one frame (frame_max %d bytes)",
                properties.message_id,
                len(properties.headers or {}),
                _frame_max(channel),
            )
            headers[DROPPED_HEADERS_HEADER] = len(properties.headers or {})
            copy = _copy(properties, headers, drop=tuple(properties.headers or ()))
        await self.publish(delivered.body, self.queues.dead_letter_queue, copy)

    async def replay(self, delivered: DeliveredMessage) -> None:
        """Publish a dead letter to the work queue again, without the dead-letter headers."""
        properties = _copy(delivered.header.properties, {}, drop=DEAD_LETTER_HEADERS)
        await self.publish(delivered.body, self.queues.name, properties)

    def _refused(self, error: DeliveryError) -> SendTaskError:
        """The error of a refused or returned publish; a return has the queues declared again."""
        if isinstance(error, PublishError):
            self._undeclared = True
        return refused(error)

    def _settled(self, outcome: object, size: int, channel_closed: bool) -> BaseException | None:
        """What became of one publish of ``size`` bytes of a batch: None once confirmed."""
        if isinstance(outcome, ChannelClosed):
            return self._closed_on(outcome, size)
        error = _outcome(outcome, channel_closed)
        if isinstance(error, ChannelInvalidStateError):
            return self._too_large(size) or error
        return error

    def _closed_on(self, error: ChannelClosed, size: int) -> Exception:
        """The error of a publish of ``size`` bytes whose channel RabbitMQ closed with ``error``.

        A message over the server's size limit closes the channel: that one is refused (and
        the limit remembered), the others it cut off are sent again on a new channel.
        """
        if not self._learn_size_limit(error):
            return SendTaskError(f"RabbitMQ refused the message: {error}")
        refusal = self._too_large(size)
        if refusal is None:
            return ChannelInvalidStateError("the channel closed on another message")
        return refusal

    def _learn_size_limit(self, close: BaseException | None) -> bool:
        """Remember the server's size limit if ``close`` closed a channel for it; say if so."""
        too_large = TOO_LARGE_REASON.search(str(close))
        if too_large is None:
            return False
        self.max_message_size = int(too_large.group(1))
        return True

    def _too_large(self, size: int) -> MessageTooLargeError | None:
        """The error of a message of ``size`` bytes over the known size limit, else None."""
        limit = self.max_message_size
        if limit is None or size <= limit:
            return None
        return MessageTooLargeError(
            f"RabbitMQ refuses the message: its {size:,} bytes are over the server's "
            f"max_message_size of {limit:,}; send less (keep large data elsewhere and send "
            "its key) or raise the server's limit"
        )

    async def close(self) -> None:
        """Forget the channel (the connection's close closes it)."""
        self._channel = None


async def declare(channel: AbstractChannel, queues: Queues) -> None:
    """Declare the work queue and the dead-letter queue (idempotent)."""
    await channel.queue_declare(
        queues.dead_letter_queue, durable=True, arguments=queues.dead_letter_arguments()
    )
    await channel.queue_declare(queues.name, durable=True, arguments=queues.work_arguments())


def refused(confirmation: object) -> SendTaskError:
    """The error of a message RabbitMQ answered with ``confirmation`` (a negative one).

    A `DeliveryError` (as aiormq raises it) carries the frame: a ``basic.return``, for a
    message no queue took, is an `UnroutableError`.
    """
    if isinstance(confirmation, PublishError):
        returned = confirmation.frame
        queue = getattr(returned, "routing_key", "?")
        return UnroutableError(
            f"RabbitMQ returned the message: no queue {queue!r} exists "
            f"({getattr(returned, 'reply_text', '')}): it was deleted after the broker declared "
            "it; the broker declares it again for the next message"
        )
    if isinstance(confirmation, DeliveryError):
        confirmation = confirmation.frame
    return SendTaskError(f"RabbitMQ refused the message: {confirmation}")


def _on_ack(
    confirmed: Callable[[int], None], position: int
) -> Callable[[asyncio.Future[Any]], None]:
    """A done callback that calls ``confirmed(position)`` when the publish was acknowledged."""

    def check(publish: asyncio.Future[Any]) -> None:
        if (
            not publish.cancelled()
            and publish.exception() is None
            and isinstance(publish.result(), Basic.Ack)
        ):
            confirmed(position)

    return check


def _outcome(outcome: object, channel_closed: bool) -> BaseException | None:
    """What became of one publish of a batch: None once confirmed, else the error.

    On a channel that closed, an error other than RabbitMQ's refusal means the publish was
    cut off before its confirmation (aiormq fails those with the close's exception, a bare
    ``Exception`` or a cancellation): a connection error, so it is published again.
    """
    if isinstance(outcome, Basic.Ack):
        return None
    if isinstance(outcome, DeliveryError):
        return refused(outcome)
    if isinstance(outcome, asyncio.CancelledError) or (
        channel_closed and isinstance(outcome, Exception)
    ):
        return ChannelInvalidStateError("the channel closed before the confirmation")
    if isinstance(outcome, BaseException):
        return outcome
    return refused(outcome)


def message_properties(priority: int | None) -> Basic.Properties:
    """The properties of a task message: persistent, with its priority where it has one."""
    return Basic.Properties(delivery_mode=PERSISTENT, priority=priority)


def _frame_max(channel: AbstractChannel) -> int:
    """The largest frame ``channel``'s connection takes, in bytes (0: no limit)."""
    return int(channel.connection.connection_tune.frame_max or 0) or sys.maxsize


def _header_frame_size(properties: Basic.Properties, body_size: int) -> int:
    """The bytes of the content header frame of a message with these properties."""
    return len(ContentHeader(0, body_size, properties).marshal()) + FRAME_OVERHEAD


def _copy(
    properties: Basic.Properties, headers: dict[str, Any], drop: tuple[str, ...] = ()
) -> Basic.Properties:
    kept = {k: v for k, v in (properties.headers or {}).items() if k not in drop}
    return Basic.Properties(
        delivery_mode=PERSISTENT,
        priority=properties.priority,
        content_type=properties.content_type,
        headers={**kept, **headers} or None,
    )
