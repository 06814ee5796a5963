"""The dead letters of an `AmqpBroker`'s queue: the dead-letter queue, read without consuming it.

RabbitMQ queues cannot be browsed, so each operation takes the dead letters one by one
(``basic.get`` without acknowledgement) on a channel of its own, acknowledges those it
replays or purges, and closes the channel: RabbitMQ puts the others back in their places.
Operations cost one round trip per dead letter; a dead letter taken by one operation is
invisible to another, so it is replayed at most once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from pamqp.commands import Basic

from taskq.abc import dead_letters as contract
from taskq_amqp.connection import CONNECTION_ERRORS
from taskq_amqp.errors import AmqpUnavailableError, unavailable
from taskq_amqp.queues import DEAD_AT_HEADER, DELIVERIES_HEADER, REASON_HEADER, header_text

if TYPE_CHECKING:
    from aiormq.abc import AbstractChannel, DeliveredMessage

    from taskq_amqp.connection import AmqpConnection
    from taskq_amqp.publisher import Publisher
    from taskq_amqp.queues import Queues

_Result = TypeVar("_Result")
#: The reason RabbitMQ gives a message it dead-lettered at its queue's ``x-delivery-limit``.
DELIVERY_LIMIT = ("delivery_limit", b"delivery_limit")


class DeadLetter(contract.DeadLetter):
    """One dead letter of a RabbitMQ queue (its id is the message id)."""


class DeadLetterQueue(contract.DeadLetterQueue):
    """List, show, replay and purge the dead letters of a broker's queue.

    Raises (every method):
        AmqpUnavailableError: RabbitMQ did not answer for the broker's ``send_timeout_s``.
    """

    def __init__(
        self,
        connection: AmqpConnection,
        queues: Queues,
        publisher: Publisher,
        timeout_s: float,
    ) -> None:
        """The dead letters of ``queues``, reached through the broker's connection."""
        self.connection = connection
        self.queues = queues
        self.publisher = publisher
        self.timeout_s = timeout_s

    @property
    def where(self) -> str:
        """The name of the dead-letter queue."""
        return self.queues.dead_letter_queue

    async def count(self) -> int:
        """How many dead letters there are."""

        async def count() -> int:
            channel = await self.publisher.channel()  # declares the queues
            declared = await channel.queue_declare(self.where, passive=True)
            return int(declared.message_count or 0)

        return await self._call("count dead letters", count)

    async def list(self, count: int = 100, after: str | None = None) -> list[contract.DeadLetter]:
        """Up to ``count`` dead letters, oldest first, starting after the id ``after``."""
        if count < 1:
            return []

        async def listing() -> list[contract.DeadLetter]:
            found: list[contract.DeadLetter] = []
            started = after is None
            async with self._taken() as taken:
                async for delivered in taken:
                    letter = _letter(delivered, self.queues.max_deliveries)
                    if started:
                        found.append(letter)
                        if len(found) >= count:
                            break
                    started = started or letter.id == after
            return found

        return await self._call("list dead letters", listing)

    async def show(self, dead_letter_id: str) -> contract.DeadLetter | None:
        """The dead letter ``dead_letter_id``, or None when there is none."""

        async def show() -> contract.DeadLetter | None:
            async with self._taken() as taken:
                async for delivered in taken:
                    if _id(delivered) == dead_letter_id:
                        return _letter(delivered, self.queues.max_deliveries)
            return None

        return await self._call("read a dead letter", show)

    async def replay(self, dead_letter_ids: Iterable[str] | None = None) -> int:
        """Send these dead letters (None: all there are now) to the queue again; how many."""
        return await self._settle("replay dead letters", dead_letter_ids, replay=True)

    async def purge(self, dead_letter_ids: Iterable[str] | None = None) -> int:
        """Delete these dead letters (None: all) for good; return how many."""
        if dead_letter_ids is not None:
            return await self._settle("purge dead letters", dead_letter_ids, replay=False)

        async def purge() -> int:
            channel = await self.publisher.channel()
            purged = await channel.queue_purge(self.where)
            return int(purged.message_count or 0)

        return await self._call("purge dead letters", purge)

    async def _settle(self, action: str, ids: Iterable[str] | None, *, replay: bool) -> int:
        wanted = None if ids is None else set(ids)

        async def settle() -> int:
            done = 0
            async with self._taken() as taken:
                async for delivered in taken:
                    if wanted is not None and _id(delivered) not in wanted:
                        continue
                    if replay:
                        await self.publisher.replay(delivered)
                    await taken.channel.basic_ack(_tag(delivered))
                    done += 1
                    if wanted is not None and done == len(wanted):
                        break
            return done

        return await self._call(action, settle)

    @asynccontextmanager
    async def _taken(self) -> AsyncIterator[_Taken]:
        await self.publisher.channel()  # the queues exist
        channel = await self.connection.channel()
        try:
            yield _Taken(channel, self.where)
        finally:
            if not channel.is_closed:
                await channel.close()  # what was taken and not acknowledged goes back

    async def _call(self, action: str, operation: Callable[[], Awaitable[_Result]]) -> _Result:
        connection = self.connection
        try:
            return await connection.call_within(action, operation, self.timeout_s)
        except CONNECTION_ERRORS as exc:
            raise unavailable(
                AmqpUnavailableError, action, connection.server, exc, self.timeout_s
            ) from exc


class _Taken:
    """The dead letters there are now, taken one by one without acknowledgement."""

    def __init__(self, channel: AbstractChannel, queue: str) -> None:
        self.channel = channel
        self.queue = queue

    async def __aiter__(self) -> AsyncIterator[DeliveredMessage]:
        remaining: int | None = None
        while remaining is None or remaining > 0:
            delivered = await self.channel.basic_get(self.queue, no_ack=False)
            if isinstance(delivered.delivery, Basic.GetEmpty):
                return
            if remaining is None:  # those dead-lettered meanwhile wait for another call
                remaining = (delivered.message_count or 0) + 1
            remaining -= 1
            yield delivered


def _id(delivered: DeliveredMessage) -> str:
    return str(delivered.header.properties.message_id or "")


def _tag(delivered: DeliveredMessage) -> int:
    tag = delivered.delivery_tag
    assert tag is not None  # a basic.get-ok always has one
    return tag


def _letter(delivered: DeliveredMessage, max_deliveries: int | None) -> DeadLetter:
    properties = delivered.header.properties
    headers: dict[str, Any] = dict(properties.headers or {})
    reason = headers.get(REASON_HEADER)
    dead_at_ms = headers.get(DEAD_AT_HEADER)
    dead_at = None
    if isinstance(dead_at_ms, int):
        dead_at = datetime.fromtimestamp(dead_at_ms / 1000, tz=timezone.utc)
    deliveries = headers.get(DELIVERIES_HEADER)
    deaths = headers.get("x-death")
    if reason is None and isinstance(deaths, list) and deaths:
        death = deaths[0]  # dead-lettered by RabbitMQ itself: its latest record
        reason = _rabbitmq_reason(death)
        when = death.get("time")
        dead_at = when if isinstance(when, datetime) else dead_at
        deliveries = max_deliveries if death.get("reason") in DELIVERY_LIMIT else None
    return DeadLetter(
        id=_id(delivered),
        payload=delivered.body,
        reason=header_text(reason),
        dead_at=dead_at,
        deliveries=deliveries if isinstance(deliveries, int) else None,
    )


def _rabbitmq_reason(death: dict[str, Any]) -> str:
    reason = header_text(death.get("reason"))
    if reason in DELIVERY_LIMIT:
        return "delivered too many times without an acknowledgement (x-delivery-limit)"
    return f"dead-lettered by RabbitMQ: {reason} (from {header_text(death.get('queue'))})"
