"""`AmqpBroker`: a durable broker on RabbitMQ, with confirms, dead letters, delay and priority."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from taskq.abc.broker import AsyncBroker
from taskq.abc.result_backend import AsyncResultBackend
from taskq.acks import AckableMessage
from taskq.capabilities import Capability
from taskq.exceptions import BatchSendError, InvalidLabelError
from taskq.labels import delay_seconds, priority_value
from taskq.message import BrokerMessage
from taskq.toolkit import check_count, check_seconds
from taskq_amqp.connection import CONNECTION_ERRORS, DEFAULT_URL, AmqpConnection
from taskq_amqp.consumer import Consumer
from taskq_amqp.dead_letters import DeadLetterQueue
from taskq_amqp.errors import AmqpUnavailableError, SendUnavailableError, unavailable
from taskq_amqp.publisher import Publication, Publisher, message_properties
from taskq_amqp.queues import ClassicQueueVersion, Queues, QueueType, bucket_ms

DEFAULT_MAX_DELIVERIES = 5
DEFAULT_RECONNECT_MAX_DELAY_S = 5.0
DEFAULT_SEND_TIMEOUT_S = 30.0
#: Classic queues store messages with the server's default version (no ``x-queue-version``).
DEFAULT_CLASSIC_QUEUE_VERSION: ClassicQueueVersion | None = None

#: What every configuration can do; ``priority`` comes with ``max_priority``.
BASE_CAPABILITIES = frozenset(
    {
        Capability.ACKS,
        Capability.REJECT,
        Capability.REDELIVERY,
        Capability.DELAY,
        Capability.LOAD_BALANCING,
        Capability.CROSS_PROCESS,
        Capability.BATCH_SEND,
    }
)


class AmqpBroker(AsyncBroker):
    """Sends tasks through a durable RabbitMQ queue; workers consume it with manual acks.

    ``kick`` returns once RabbitMQ has confirmed the message (publisher confirms); messages
    are persistent. A worker holds at most ``prefetch_count`` unacknowledged messages (by
    default its receiver's capacity); a worker that dies or loses its connection has them
    redelivered to another. ``reject`` moves a message to the dead-letter queue with its
    reason, and so does delivering it ``max_deliveries`` times without an acknowledgement;
    `dead_letters` (and ``taskq dlq``) lists, replays and purges them. The ``delay`` label
    parks a message in a delay bucket queue whose messages expire into the work queue (no
    plugin needed; delays keep three significant digits). The ``priority`` label needs
    ``max_priority`` (classic queues only). Delivery is at least once.

    It publishes on one connection (`connection`) and consumes on another (`consuming`,
    opened by the first ``listen()``): during a memory or disk alarm RabbitMQ blocks every
    connection that publishes, and a worker whose retries or dead letters shared its
    consumer's connection could then no longer acknowledge, which is what frees the memory.

    Args:
        url: The server, ``amqp://user:password@host:port/vhost`` (``amqps://`` for TLS).
        queue_name: The work queue; clients and workers of one queue must agree on it and on
            the settings below that shape it (its type, priorities, delivery limit).
        result_backend: Where results go (default: nowhere).
        task_id_generator: Makes task ids (default: random UUID hex).
        queue_type: ``"classic"`` (default) or ``"quorum"`` (replicated; no priorities).
        max_priority: The highest ``priority`` a classic queue orders by (``x-max-priority``,
            1 to 255; higher labels count as it). None (default): no priorities, and a
            ``priority`` label is refused.
        max_deliveries: A message delivered this many times without an acknowledgement goes
            to the dead letters (quorum queues: ``x-delivery-limit``; classic queues: counted
            by taskq). None: no limit. Default 5.
        dead_letter_queue: The dead-letter queue (default ``{queue_name}.dead-letters``).
        classic_queue_version: The storage version of the classic queues it declares (work
            queue when classic, dead letters, delay buckets; ``x-queue-version``, RabbitMQ
            3.10 and later). 2 (default): a persistent message is confirmed once RabbitMQ wrote
            it to its files, without waiting for an fsync. 1: confirmed once fsynced, several
            times slower per one-by-one ``kick``. None: the server's default or policy.
        prefetch_count: Unacknowledged messages a consumer holds (QoS). None (default): the
            capacity of the worker's receiver (running plus prefetched tasks); outside a
            worker, no limit (the consumer's own loop bounds what it takes).
        reconnect_max_delay_s: Longest pause between reconnection attempts.
        send_timeout_s: Seconds ``kick`` takes at most while RabbitMQ does not answer (its
            retries, and the wait for a silent connection's reply), before raising
            `SendUnavailableError`.

    Raises:
        ValueError: A bad URL scheme or option value.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        queue_name: str = "taskq",
        result_backend: AsyncResultBackend[Any] | None = None,
        task_id_generator: Callable[[], str] | None = None,
        *,
        queue_type: QueueType = "classic",
        max_priority: int | None = None,
        max_deliveries: int | None = DEFAULT_MAX_DELIVERIES,
        dead_letter_queue: str | None = None,
        classic_queue_version: ClassicQueueVersion | None = DEFAULT_CLASSIC_QUEUE_VERSION,
        prefetch_count: int | None = None,
        reconnect_max_delay_s: float = DEFAULT_RECONNECT_MAX_DELAY_S,
        send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S,
    ) -> None:
        super().__init__(result_backend, task_id_generator)
        if prefetch_count is not None:
            check_count("prefetch_count", prefetch_count, alternative="or None")
        check_seconds("reconnect_max_delay_s", reconnect_max_delay_s)
        check_seconds("send_timeout_s", send_timeout_s)
        self.queues = Queues(
            queue_name,
            queue_type,
            max_priority,
            max_deliveries,
            dead_letter_queue or f"{queue_name}.dead-letters",
            classic_queue_version,
        )
        self.url = url
        self.prefetch_count = prefetch_count
        self.send_timeout_s = send_timeout_s
        self.connection = AmqpConnection(url, reconnect_max_delay_s)
        self.consuming = AmqpConnection(url, reconnect_max_delay_s)
        self.publisher = Publisher(self.connection, self.queues)
        self._consumers: list[Consumer] = []
        capabilities = BASE_CAPABILITIES
        if max_priority is not None:
            capabilities |= {Capability.PRIORITY}
        # what this instance does depends on its configuration
        self.capabilities = capabilities  # type: ignore[misc]

    @property
    def queue_name(self) -> str:
        """The work queue."""
        return self.queues.name

    @property
    def dead_letters(self) -> DeadLetterQueue:
        """The dead letters of this queue: list, show, replay and purge them."""
        return DeadLetterQueue(self.connection, self.queues, self.publisher, self.send_timeout_s)

    # -- lifecycle -----------------------------------------------------------------------------

    async def startup(self) -> None:
        """Connect and declare the queues (retrying for ``send_timeout_s``), then start.

        Raises:
            AmqpUnavailableError: RabbitMQ did not answer in time.
        """
        self.connection.reopen()
        try:
            await self.connection.call_within(
                "connect", self.publisher.channel, self.send_timeout_s
            )
        except CONNECTION_ERRORS as exc:
            raise unavailable(
                AmqpUnavailableError, "connect", self.connection.server, exc, self.send_timeout_s
            ) from exc
        await super().startup()

    async def shutdown(self) -> None:
        """Stop consuming (unacknowledged messages go back to the queue) and disconnect."""
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            await consumer.close()
        await self.publisher.close()
        await self.connection.close()
        await self.consuming.close()
        await super().shutdown()

    # -- sending -------------------------------------------------------------------------------

    async def kick(self, message: BrokerMessage) -> None:
        """Publish the message (to its delay bucket when it has a ``delay``); await the confirm.

        Raises:
            InvalidLabelError: ``delay`` or ``priority`` outside the bounds of `taskq.labels`.
            SendUnavailableError: RabbitMQ did not answer for ``send_timeout_s``.
        """
        publication = self._publication(message)
        body, properties, delay_ms = publication.body, publication.properties, publication.delay_ms
        publisher = self.publisher
        if delay_ms:
            await self._sending(lambda: publisher.publish_delayed(body, delay_ms, properties))
        else:
            name = self.queues.name
            await self._sending(lambda: publisher.publish(body, name, properties))

    async def kick_many(self, messages: Sequence[BrokerMessage]) -> None:
        """Publish the whole batch, then await all its confirms at once (one wait per batch).

        ``delay`` and ``priority`` labels work as in `kick`. When the connection is lost
        before every confirm arrived, the unconfirmed messages are published again on a new
        one (at least once, as `kick` does) for up to ``send_timeout_s``.

        Raises:
            BatchSendError: RabbitMQ refused messages (negative confirms) or did not answer
                for ``send_timeout_s``; ``sent_ids`` are exactly the confirmed ones. A label
                outside the bounds of `taskq.labels` refuses the batch before it is sent.
        """
        ids = [message.task_id for message in messages]
        try:
            publications = [self._publication(message) for message in messages]
        except InvalidLabelError as exc:
            raise BatchSendError.of([], ids, f"{type(exc).__name__}: {exc}") from exc
        unpublished = ConnectionError("not published yet")
        outcomes: list[BaseException | None] = [unpublished] * len(messages)
        pending = list(range(len(messages)))
        publisher = self.publisher

        async def publish_pending() -> None:
            nonlocal pending
            batch = [publications[n] for n in pending]
            sent = pending

            def confirmed(position: int) -> None:  # known at once: the wait may be given up
                outcomes[sent[position]] = None

            for n, outcome in zip(
                pending, await publisher.publish_many(batch, confirmed), strict=True
            ):
                outcomes[n] = outcome
            pending = [n for n in pending if isinstance(outcomes[n], CONNECTION_ERRORS)]
            if pending:  # lost with the connection: published again on the next one
                raise cast(BaseException, outcomes[pending[0]])

        try:
            if pending:
                await self._sending(publish_pending, "send a batch of tasks")
        except SendUnavailableError as exc:
            raise _batch_error(ids, outcomes, str(exc)) from exc
        refusal = next((outcome for outcome in outcomes if outcome is not None), None)
        if refusal is not None:
            raise _batch_error(ids, outcomes, str(refusal)) from refusal

    def _publication(self, message: BrokerMessage) -> Publication:
        """The message as published: persistent, with its priority and delay bucket.

        Raises:
            InvalidLabelError: ``delay`` or ``priority`` outside the bounds of `taskq.labels`.
        """
        labels = message.labels
        priority = None
        delay = 0.0
        if labels:
            if self.queues.max_priority is not None and "priority" in labels:
                priority = min(max(priority_value(labels["priority"]), 0), self.queues.max_priority)
            delay = delay_seconds(labels.get("delay"))
        delay_ms = bucket_ms(delay) if delay > 0 else 0
        return Publication(message.message, message_properties(priority), delay_ms)

    async def _sending(self, operation: Callable[[], Any], action: str = "send a task") -> None:
        connection = self.connection
        if connection.closed:
            connection.reopen()  # a client that kicks after shutdown, or without startup
        try:
            await connection.call_within(action, operation, self.send_timeout_s)
        except CONNECTION_ERRORS as exc:
            raise unavailable(
                SendUnavailableError,
                action,
                connection.server,
                exc,
                self.send_timeout_s,
            ) from exc

    # -- receiving -----------------------------------------------------------------------------

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """Yield the messages of the work queue, as a new consumer, until shutdown.

        Each message's ``ack`` acknowledges it; ``reject(reason)`` dead-letters it with the
        reason; ``release`` returns it to the queue.
        """
        if self.consuming.closed:
            self.consuming.reopen()
        prefetch = self.prefetch_count or self.worker_capacity or 0  # 0: no limit
        consumer = Consumer(self.consuming, self.queues, self.publisher, prefetch)
        self._consumers.append(consumer)
        try:
            async for message in consumer.messages():
                yield message
        finally:  # also when the caller stops iterating: it takes nothing more
            await consumer.stop()

    @property
    def lease_s(self) -> float:
        """Seconds after which RabbitMQ gives what a vanished consumer held to another one.

        It is the connection's heartbeat timeout (the URL's ``heartbeat``, 60 by default): a
        consumer whose process dies loses its messages at once, as its socket closes; one whose
        host goes silent is noticed after this long. A live consumer keeps its messages.
        """
        heartbeat = parse_qs(urlsplit(self.url).query).get("heartbeat", ["60"])[-1]
        return float(heartbeat)

    def queue_names(self) -> list[str]:
        """The queues this broker declared: work, dead letters and the delay buckets it used."""
        return [
            self.queues.name,
            self.queues.dead_letter_queue,
            *sorted(self.publisher.bucket_names),
        ]

    async def delete_queues(self) -> None:
        """Delete every queue of `queue_names`, with the messages in them (for tear-downs)."""

        async def delete() -> None:
            channel = await self.connection.channel()
            for name in self.queue_names():
                await channel.queue_delete(name)
            await channel.close()

        self.connection.reopen()
        await self.connection.call_within("delete the queues", delete, self.send_timeout_s)


def _batch_error(
    ids: Sequence[str], outcomes: Sequence[BaseException | None], reason: str
) -> BatchSendError:
    """The error of a batch whose messages with no error in ``outcomes`` were confirmed."""
    sent = [task_id for task_id, outcome in zip(ids, outcomes, strict=True) if outcome is None]
    unsent = [
        task_id for task_id, outcome in zip(ids, outcomes, strict=True) if outcome is not None
    ]
    return BatchSendError.of(sent, unsent, reason)
