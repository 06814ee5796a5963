"""`RedisStreamBroker`: a durable broker on Redis Streams and consumer groups."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import socket
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError
from typing_extensions import Self

from taskq.abc.broker import AsyncBroker
from taskq.abc.result_backend import AsyncResultBackend
from taskq.abc.unique_store import UniqueKeyStore
from taskq.acks import AckableMessage
from taskq.capabilities import Capability
from taskq.control.unique import HeldKey
from taskq.exceptions import BatchSendError, ListenError
from taskq.inspection import QueueInspection
from taskq.labels import delay_seconds, priority_value
from taskq.message import BrokerMessage
from taskq.task_events import EventKind, quoted
from taskq.toolkit import await_keeping_cancellation
from taskq_redis.batching import BatchSender
from taskq_redis.connection import DEFAULT_URL, RedisConnection, SerialConnection
from taskq_redis.delayed import delayed_member, move_due_forever
from taskq_redis.errors import (
    RedisBrokerUnavailableError,
    SendRefusedError,
    SendUnavailableError,
    answer_code,
    answered,
    unavailable,
)
from taskq_redis.eviction import warn_if_evicting
from taskq_redis.inspection import inspect_queue
from taskq_redis.keys import QueueKeys
from taskq_redis.options import BrokerOption, BrokerOptions
from taskq_redis.reconnect import (
    CONNECTION_ERRORS,
    DEFAULT_MAX_DELAY_S,
    AnswerLog,
    Reconnector,
    TransientAnswerError,
)
from taskq_redis.script_batch import BatchedScript
from taskq_redis.scripts import (
    ACKED_DEAD_LETTER_SCAN,
    KICK_MANY,
    ScriptArgs,
    ScriptKeys,
    Scripts,
)
from taskq_redis.unique import RELEASE_SCRIPT, KeyRelease, RedisUniqueStore
from taskq_redis.wire import CommandPrefix

if TYPE_CHECKING:
    from taskq_redis.consumer import DeadLettered, StreamConsumer
    from taskq_redis.dead_letters import DeadLetterQueue

#: What the acknowledgement batch carries: a stream entry (priority level, entry id) to
#: acknowledge and delete, or a unique key to free.
Settlement = tuple[int, bytes] | KeyRelease

logger = logging.getLogger("taskq.redis")

DEFAULT_LEASE_S = 30.0
DEFAULT_BLOCK_MS = 1000
DEFAULT_BATCH_SIZE = 100
DEFAULT_PRIORITY_LEVELS = 10
DEFAULT_MAX_DELIVERIES = 5
DEFAULT_DELAY_CHECK_INTERVAL_S = 0.2
DEFAULT_RECONNECT_MAX_DELAY_S = DEFAULT_MAX_DELAY_S
DEFAULT_SEND_TIMEOUT_S = 30.0
#: Seconds a shutdown keeps trying to hand back held messages while Redis does not answer.
HAND_BACK_TIMEOUT_S = 5.0
#: Messages of a `kick_many` sent per script call (Redis runs one call at a time: a bounded
#: call keeps other clients' commands waiting a millisecond or two at most).
KICK_MANY_CHUNK = 1000


class RedisStreamBroker(AsyncBroker):
    """Sends tasks through Redis Streams; workers read them through one consumer group.

    A message stays in Redis until a worker acknowledges it (then it is deleted). A worker
    holds what it read under a lease of ``lease_s`` seconds, which it renews every
    ``heartbeat_interval_s`` while the task runs, so a slow task is never handed to a second
    worker while the first lives; when a worker dies, another takes its messages over once
    their lease expires. A message whose processing ended unsettled (``release``, or dropped
    without an ack or reject) goes back to the workers within a lease, keeping its delivery
    count. ``reject`` (and a message delivered ``max_deliveries`` times without an
    acknowledgement) moves the message to a dead-letter stream that `dead_letters` (and
    ``taskq dlq``) lists and replays. The ``delay`` label (seconds) parks a message in a
    sorted set until it is due; the ``priority`` label picks one of ``priority_levels``
    streams, read highest first. Delivery is at least once: a task can run twice when its
    worker dies (or loses Redis for longer than the lease) after running it, before the
    acknowledgement.

    Args:
        url: The Redis server, ``redis://[[user]:[password]@]host[:port][/db]``, ``rediss://``
            for TLS or ``unix://``. Redis 6.2 or later.
        queue_name: The queue; clients and workers of one queue must agree on it.
        consumer_group_name: The consumer group workers read through; every message goes to
            one worker of the group.
        result_backend: Where results go (default: nowhere).
        task_id_generator: Makes task ids (default: random UUID hex).
        key_prefix: Start of every key (``{key_prefix}:{queue_name}:...``); use a hash tag
            such as ``"{taskq}"`` on Redis Cluster.
        consumer_name: This process's consumer name in the group (default: host, pid and a
            random suffix); each ``listen()`` adds ``-1``, ``-2``, ...
        lease_s: Seconds a taken message is reserved for its worker without a heartbeat;
            after that another worker takes it over. Default 30.
        heartbeat_interval_s: Seconds between lease renewals of held messages (default
            ``lease_s / 3``).
        reclaim_interval_s: Seconds between looks for expired leases to take over (default
            ``lease_s / 4``).
        block_ms: Milliseconds one read waits for new messages before looking again.
        batch_size: Messages read at once from each priority level's stream (the worker's
            buffer; they are leased too).
        priority_levels: Number of priority streams; ``priority`` label values are clamped
            to ``0 .. priority_levels - 1`` (no label: 0, the lowest). Default 10.
        max_deliveries: A message delivered this many times without an acknowledgement (its
            lease expired, it was released, or its worker stopped while it ran) goes to the
            dead letters instead of another worker (a task that kills its worker every
            time). None: no limit. Default 5.
        max_stream_length: Approximate cap on each stream's length (``XADD MAXLEN ~``):
            past it Redis drops the *oldest entries, even unread ones*. None (default): no cap.
        dead_letter_stream: Key of the dead-letter stream (default
            ``{key_prefix}:{queue_name}:dead-letters``).
        delay_check_interval_s: Seconds between a worker's looks for due delayed messages.
        reconnect_max_delay_s: Longest pause between reconnection attempts.
        send_timeout_s: Seconds ``kick`` keeps retrying while Redis does not answer, before
            raising `SendUnavailableError`.
        max_connections: Most connections of the broker's shared pool (scripts, heartbeats,
            dead letters, ...). Sends, acknowledgements and each ``listen()``'s reads use
            connections of their own besides. None: redis-py's default.
        **connection_kwargs: Passed to redis-py's `BlockingConnectionPool` (``password``,
            ``client_name``, ``socket_timeout``, ``ssl_cert_reqs``, ...). A call without a
            reply within ``socket_timeout`` (default 5 s) counts as a lost connection; sends,
            acknowledgements and reads apply it once per call (see `SerialConnection`).

    The settings are kept in ``options``, a checked `BrokerOptions` that the broker's parts
    receive; each also reads (and sets, as a checked copy) as an attribute: ``lease_s``, ...

    Raises:
        ValueError: A bad URL scheme or option value.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
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
    )

    # the settings, read (and set) as attributes: each is a field of `options`
    queue_name: BrokerOption[str] = BrokerOption()
    consumer_group_name: BrokerOption[str] = BrokerOption()
    keys: BrokerOption[QueueKeys] = BrokerOption()
    lease_s: BrokerOption[float] = BrokerOption()
    heartbeat_interval_s: BrokerOption[float] = BrokerOption()
    reclaim_interval_s: BrokerOption[float] = BrokerOption()
    block_ms: BrokerOption[int] = BrokerOption()
    batch_size: BrokerOption[int] = BrokerOption()
    priority_levels: BrokerOption[int] = BrokerOption()
    max_deliveries: BrokerOption[int | None] = BrokerOption()
    max_stream_length: BrokerOption[int | None] = BrokerOption()
    delay_check_interval_s: BrokerOption[float] = BrokerOption()
    reconnect_max_delay_s: BrokerOption[float] = BrokerOption()
    send_timeout_s: BrokerOption[float] = BrokerOption()

    def __init__(
        self,
        url: str = DEFAULT_URL,
        queue_name: str = "taskq",
        consumer_group_name: str = "taskq",
        result_backend: AsyncResultBackend[Any] | None = None,
        task_id_generator: Callable[[], str] | None = None,
        *,
        key_prefix: str = "taskq",
        consumer_name: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        heartbeat_interval_s: float | None = None,
        reclaim_interval_s: float | None = None,
        block_ms: int = DEFAULT_BLOCK_MS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        priority_levels: int = DEFAULT_PRIORITY_LEVELS,
        max_deliveries: int | None = DEFAULT_MAX_DELIVERIES,
        max_stream_length: int | None = None,
        dead_letter_stream: str | None = None,
        delay_check_interval_s: float = DEFAULT_DELAY_CHECK_INTERVAL_S,
        reconnect_max_delay_s: float = DEFAULT_RECONNECT_MAX_DELAY_S,
        send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S,
        max_connections: int | None = None,
        **connection_kwargs: Any,
    ) -> None:
        super().__init__(result_backend, task_id_generator)
        self.connection = RedisConnection(
            url, "RedisStreamBroker", max_connections, **connection_kwargs
        )
        self.options = BrokerOptions(
            queue_name=queue_name,
            consumer_group_name=consumer_group_name,
            keys=QueueKeys.of(key_prefix, queue_name, priority_levels, dead_letter_stream),
            lease_s=lease_s,
            heartbeat_interval_s=_or_default(heartbeat_interval_s, lease_s / 3),
            reclaim_interval_s=_or_default(reclaim_interval_s, lease_s / 4),
            block_ms=block_ms,
            batch_size=batch_size,
            priority_levels=priority_levels,
            max_deliveries=max_deliveries,
            max_stream_length=max_stream_length,
            delay_check_interval_s=delay_check_interval_s,
            reconnect_max_delay_s=reconnect_max_delay_s,
            send_timeout_s=send_timeout_s,
        )
        self.url = url
        self.consumer_name = consumer_name or (
            f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        )
        self.max_connections = max_connections
        self.connection_kwargs = connection_kwargs
        self.reconnector = Reconnector(
            self.connection.server, reconnect_max_delay_s, self.connection.drop_connections
        )
        # kicks go one call at a time (the batch sender's): through a connection of their own
        self._kick_connection = SerialConnection(self.connection)
        self._ack_connection = SerialConnection(self.connection)
        # a client's kicks come one after another: each goes at once, without a turn's wait
        self.kick_sender: BatchSender[bytes] = BatchSender(self._send_kicks, wait_for_turn=False)
        # per priority level, the XADD of a message but the message: made again when the
        # options change (the keys, the stream cap)
        self._xadds: tuple[CommandPrefix, ...] = ()
        self._xadds_of: BrokerOptions | None = None
        self.ack_sender: BatchSender[Settlement] = BatchSender(self._send_acks)
        self._kick_many_script = BatchedScript(self.connection, KICK_MANY)
        self._scripts: Scripts | None = None
        self._consumers: list[StreamConsumer] = []
        self._consumer_numbers = itertools.count(1)
        self._mover: asyncio.Task[None] | None = None
        self._mover_stop = asyncio.Event()
        self._stopping = False
        # the unique keys of dead-lettered messages being freed (see `_record_dead_lettered`)
        self._freeing: set[asyncio.Task[None]] = set()

    @property
    def lease_ms(self) -> int:
        """``lease_s`` in whole milliseconds, as Redis takes it."""
        return self.options.lease_ms

    # -- the connection ------------------------------------------------------------------------

    @property
    def redis(self) -> aioredis.Redis:
        """The redis-py client (opened on first use, closed by `shutdown`)."""
        if not self.connection.is_open:
            self.reconnector.closed = False
        return self.connection.client

    @property
    def scripts(self) -> Scripts:
        """The broker's Lua scripts, registered on its client."""
        if self._scripts is None or not self.connection.is_open:
            self._scripts = Scripts(self.redis)
        return self._scripts

    @property
    def dead_letters(self) -> DeadLetterQueue:
        """The dead letters of this queue: list, show, replay and purge them."""
        # imported on use: a client or ``taskq status`` never reads the dead letters
        from taskq_redis.dead_letters import DeadLetterQueue

        return DeadLetterQueue.of(self)

    async def inspect(self) -> QueueInspection:
        """Count the queue's messages by state and list the consumers holding messages.

        ``in_flight`` counts what workers read and hold unsettled, their buffers included
        (each reads up to ``batch_size`` ahead). Consumers are those the consumer group knows,
        with the messages each holds (a stopped worker stays listed, holding nothing).

        Raises:
            RedisBrokerUnavailableError: Redis did not answer for ``send_timeout_s``.
        """
        try:
            return await self.reconnector.call(
                "inspect the queue",
                lambda: inspect_queue(self.redis, self.options),
                give_up_after_s=self.send_timeout_s,
            )
        except CONNECTION_ERRORS as exc:
            raise unavailable(
                RedisBrokerUnavailableError, "inspect the queue", self.reconnector.server, exc
            ) from exc

    # -- lifecycle -----------------------------------------------------------------------------

    async def startup(self) -> None:
        """Check that Redis answers (retrying for ``send_timeout_s``), then start as usual.

        Raises:
            RedisUnavailableError: Redis did not answer in time.
        """
        try:
            await self.reconnector.call(
                "connect", self.redis.ping, give_up_after_s=self.send_timeout_s
            )
        except CONNECTION_ERRORS as exc:
            raise unavailable(
                RedisBrokerUnavailableError, "connect", self.reconnector.server, exc
            ) from exc
        self._stopping = False
        await super().startup()

    async def shutdown(self) -> None:
        """Stop reading, finish pending acknowledgements, hand back held messages, close.

        Messages this process read but did not settle are handed back: other workers take
        them within about a second, in their order. Those that started keep their delivery
        count (a task that stops its worker every time reaches the dead letters after
        ``max_deliveries``); those never started have that delivery undone. If Redis does not
        answer for ``HAND_BACK_TIMEOUT_S``, they stay pending and another worker takes them
        over when their lease expires.
        """
        self._stopping = True  # a listen() still starting must not begin consuming now
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            await consumer.close()
        mover, self._mover = self._mover, None
        if mover is not None:
            self._mover_stop.set()
            mover.cancel()
            await asyncio.gather(mover, return_exceptions=True)
        await asyncio.gather(*self._freeing, return_exceptions=True)
        if self.connection.is_open:
            await self._settle_and_hand_back(consumers)
        self.reconnector.closed = True
        self._scripts = None
        await self._kick_connection.close()
        await self._ack_connection.close()
        await self.connection.close()
        await super().shutdown()

    async def _settle_and_hand_back(self, consumers: list[StreamConsumer]) -> None:
        try:
            await asyncio.wait_for(self.ack_sender.drain(), HAND_BACK_TIMEOUT_S)
            for consumer in consumers:
                handed = await self.reconnector.call(
                    "hand back held messages",
                    consumer.hand_back,
                    give_up_after_s=HAND_BACK_TIMEOUT_S,
                )
                if handed:
                    logger.info("Handed back %d message(s) this worker had not settled", handed)
        except (asyncio.TimeoutError, *CONNECTION_ERRORS) as exc:  # type: ignore[misc]
            logger.warning(
                "Could not hand back held messages (%s): other workers take them over when "
                "their lease (%g s) expires",
                exc or type(exc).__name__,
                self.lease_s,
            )
        except ResponseError as exc:  # up but refusing (an ACL rule, say): shut down all the same
            AnswerLog(self.reconnector.server, "hand back held messages").failed(
                exc, f"other workers take them over when their lease ({self.lease_s:g} s) expires"
            )

    # -- sending -------------------------------------------------------------------------------

    async def kick(self, message: BrokerMessage) -> None:
        """Append the message to the stream of its priority, or park it until its delay.

        Raises:
            InvalidLabelError: ``delay`` or ``priority`` is outside the bounds of
                `taskq.labels` (a ``delay`` over 30 days, a ``priority`` that is not an
                integral number, ``inf`` or ``nan``, ...).
            SendUnavailableError: Redis did not answer for ``send_timeout_s``.
        """
        level = 0
        if message.labels:
            level, delay_ms = self._placement(message)
            if delay_ms > 0:
                await self._kick_delayed(level, message.message, delay_ms)
                return
        xadds = self._xadds if self._xadds_of is self.options else self._make_xadds()
        await self.kick_sender.submit(xadds[level].complete(message.message))

    async def kick_many(self, messages: Sequence[BrokerMessage]) -> None:
        """Send a batch as `kick` sends each message, in one round trip and in batch order.

        Each ``KICK_MANY_CHUNK`` messages go in one script call (pipelined: one round trip
        for the batch), which appends each message to the stream of its priority or parks it
        until its delay. While Redis does not answer, the calls are retried as a `kick` is,
        for ``send_timeout_s``; a message whose call was cut off may then be sent twice.

        Raises:
            BatchSendError: Some messages were not sent: Redis refused their command (a key of
                another type, out of memory, ...), did not answer for ``send_timeout_s``, or a
                label of the batch is invalid (then nothing is sent). ``sent_ids`` names the
                messages Redis confirmed, ``unsent_ids`` the others.
        """
        try:
            chunks = [
                (chunk, self._kick_many_args(chunk)) for chunk in _chunks(messages, KICK_MANY_CHUNK)
            ]
        except Exception as exc:  # InvalidLabelError: send nothing of a batch with a bad label
            ids = [m.task_id for m in messages]
            raise BatchSendError.of([], ids, f"{type(exc).__name__}: {exc}") from exc
        outcomes = await asyncio.gather(
            *(self._send_chunk(args) for _, args in chunks), return_exceptions=True
        )
        sent: list[str] = []
        unsent: list[str] = []
        errors: list[BaseException] = []
        for (chunk, _), outcome in zip(chunks, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                unsent.extend(m.task_id for m in chunk)
                errors.append(outcome)
                continue
            refused = {int(position) - 1: error for position, error in outcome}
            for n, message in enumerate(chunk):
                (unsent if n in refused else sent).append(message.task_id)
            errors.extend(ResponseError(_text(error)) for error in refused.values())
        if errors:
            error = errors[0]
            reason = f"{type(error).__name__}: {error}"
            raise BatchSendError.of(sent, unsent, reason) from error

    def _placement(self, message: BrokerMessage) -> tuple[int, int]:
        """The priority level of ``message`` and its delay in ms (0: none), from its labels."""
        labels = message.labels
        if not labels:
            return 0, 0
        level = self._level(labels.get("priority"))
        delay = labels.get("delay")
        return level, 0 if delay is None else max(_delay_ms(delay), 0)

    def _level(self, priority: Any) -> int:
        return min(max(priority_value(priority), 0), self.priority_levels - 1)

    def _kick_many_args(self, messages: Sequence[BrokerMessage]) -> ScriptArgs:
        parts: list[bytes] = []
        for message in messages:
            level, delay_ms = self._placement(message)
            data = delayed_member(level, message.message) if delay_ms else message.message
            parts += (b"%d %d\n" % (-delay_ms if delay_ms else level, len(data)), data)
        return [self.max_stream_length or "", b"".join(parts)]

    async def _send_chunk(self, args: ScriptArgs) -> list[Any]:
        """Run `KICK_MANY` with ``args``; return what Redis refused ({position, error}...)."""
        keys = [self.keys.delayed, *self.keys.streams]
        return list(await self._sending(lambda: self._kick_many_script(keys, args)))

    async def _kick_delayed(self, level: int, payload: bytes, delay_ms: int) -> None:
        member = delayed_member(level, payload)
        keys: ScriptKeys = [self.keys.delayed]
        args: ScriptArgs = [delay_ms, member]
        await self._sending(functools.partial(self.scripts.kick_delayed, keys, args))

    def _make_xadds(self) -> tuple[CommandPrefix, ...]:
        """Per priority level, the ``XADD`` of a message but the message (see `CommandPrefix`)."""
        options = self.options
        maxlen = options.max_stream_length
        cap = ("MAXLEN", "~", maxlen) if maxlen is not None else ()
        encoding = self.connection.connection_kwargs.get("encoding", "utf-8")
        self._xadds = tuple(
            CommandPrefix(("XADD", stream, *cap, "*", "m"), encoding)
            for stream in options.keys.streams
        )
        self._xadds_of = options
        return self._xadds

    def _send_kicks(self, commands: list[bytes]) -> Awaitable[None]:
        return self._sending(lambda: self._kick_connection.execute(commands))

    async def _sending(self, operation: Callable[[], Any]) -> Any:
        """Run ``operation`` (retried for ``send_timeout_s``) and return what it returned."""
        try:
            return await self.reconnector.call(
                "send a task", operation, give_up_after_s=self.options.send_timeout_s
            )
        except TransientAnswerError as exc:  # still answered after send_timeout_s
            server = self.reconnector.server
            raise SendRefusedError(answered("send the task", server, exc.answer)) from exc.answer
        except CONNECTION_ERRORS as exc:
            raise unavailable(
                SendUnavailableError,
                "send the task",
                self.reconnector.server,
                exc,
                self.send_timeout_s,
            ) from exc
        except RedisError as exc:  # Redis is up and refused it: out of memory, read-only, ...
            raise SendRefusedError(answered("send the task", self.reconnector.server, exc)) from exc

    # -- receiving -----------------------------------------------------------------------------

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """Yield messages for this worker as a new consumer of the group, until shutdown.

        Each message's ``ack`` deletes it from the stream; its ``reject`` moves it to the
        dead letters; its ``release`` gives it back unsettled, for any worker within a lease,
        keeping its delivery count (as happens to a message dropped without being settled).
        When the ``listen()`` ends before shutdown (its caller closes it, or stops iterating
        and drops it), the messages it read and did not yield are handed back to other
        workers at once. The first ``listen()`` also starts moving due delayed messages.
        """
        # imported on use: a client or ``taskq status`` never reads the queue
        from taskq_redis.consumer import StreamConsumer

        # apart: redis-py's writes could swallow a cancellation of this listen() while it starts
        await await_keeping_cancellation(self._start_listening())
        if self._stopping:
            return
        consumer = StreamConsumer(
            f"{self.consumer_name}-{next(self._consumer_numbers)}",
            self.options,
            self.redis,
            SerialConnection(self.connection),
            self.scripts,
            self.reconnector,
            self.ack_sender,
            self.create_groups,
            self._record_dead_lettered,
        )
        # those whose listen() ended and whose messages were all settled since are gone
        self._consumers = [c for c in self._consumers if not c.closed]
        self._consumers.append(consumer)
        try:
            async for message in consumer.messages():
                yield message
        finally:  # ended, closed or dropped by its caller: others get what it did not yield
            if await consumer.stop_reading(HAND_BACK_TIMEOUT_S) and consumer in self._consumers:
                self._consumers.remove(consumer)  # closed: nothing is left to hand back

    async def _start_listening(self) -> None:
        """Create the groups; at the first ``listen()``, check memory policy and start moving."""
        await self.create_groups()
        if self._stopping or self._mover is not None:
            return
        await warn_if_evicting(self.redis, self.reconnector.server)
        if self._mover is None and not self._stopping:  # another listen() may have started it
            self._mover_stop = asyncio.Event()
            self._mover = asyncio.ensure_future(
                move_due_forever(self.options, self.scripts, self.reconnector, self._mover_stop)
            )

    def _record_dead_lettered(self, letters: list[DeadLettered]) -> None:
        """Record a ``rejected`` event for each message the scripts dead-lettered; free its key.

        Such a message's task ended for good, as a rejected one's: the unique key it holds
        (if any) is freed, so that a unique ``kiq`` sends the task again instead of returning
        the handle of one that never gets a result.
        """
        recorder = self.event_recorder
        if recorder is None and self.unique_store is None:
            return
        held: list[HeldKey] = []
        for payload, reason in letters:
            if payload is None:
                continue
            try:
                message = self.formatter.loads(payload)
            except Exception:  # not a message of this broker: nothing to record
                continue
            if recorder is not None:
                recorder.record(
                    EventKind.REJECTED,
                    message.task_id,
                    message.task_name,
                    error_type="MaxDeliveriesExceeded",
                    error_message=reason.decode(errors="replace"),
                )
            key = HeldKey.of(message) if self.unique_store is not None else None
            if key is not None:
                held.append(key)
        if held:
            freeing = asyncio.ensure_future(self._free_keys(held))
            self._freeing.add(freeing)
            freeing.add_done_callback(self._freeing.discard)

    async def _free_keys(self, held: list[HeldKey]) -> None:
        for key in held:
            await key.free(self)  # logs a failure: the key then frees itself at its TTL

    async def create_groups(self) -> None:
        """Create the consumer group on every priority stream (and the streams) if missing.

        The group starts at the beginning, so messages sent before any worker ran are read.
        Redis out of memory refuses ``XGROUP CREATE`` even where the group exists; where it
        does not, this waits (logged once) until Redis accepts, or the broker shuts down: a
        worker started to drain a full Redis reads what it can, as acknowledging frees memory.

        Raises:
            ListenError: A stream's key holds another Redis type (other code wrote there).
        """
        refusals = AnswerLog(self.reconnector.server, "create the consumer group")
        while not self._stopping:
            refused = await self._create_missing_groups()
            if refused is None:
                refusals.succeeded()
                return
            refusals.failed(
                refused,
                f"workers cannot read until it exists; trying again every "
                f"{self.reconnect_max_delay_s:g} s",
            )
            await asyncio.sleep(self.reconnect_max_delay_s)

    async def _create_missing_groups(self) -> ResponseError | None:
        """Create the groups that are missing; return the refusal (OOM) of one still missing."""

        async def create() -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream in self.keys.streams:
                    pipe.xgroup_create(stream, self.consumer_group_name, id="0", mkstream=True)
                return list(await pipe.execute(raise_on_error=False))

        outcomes = await self.reconnector.call("create the consumer group", create)
        for stream, outcome in zip(self.keys.streams, outcomes, strict=True):
            if not isinstance(outcome, ResponseError) or "BUSYGROUP" in str(outcome):
                continue
            if "WRONGTYPE" in str(outcome):
                raise ListenError(
                    f"cannot create the consumer group: the key {quoted(stream)} at "
                    f"{self.reconnector.server} holds another type than a stream: delete that "
                    "key or give the broker another key_prefix or queue_name"
                ) from outcome
            if answer_code(outcome) != "OOM":
                raise outcome
            if not await self._group_exists(stream):
                return outcome
        return None

    async def _group_exists(self, stream: str) -> bool:
        try:
            groups = await self.reconnector.call(
                "look for the consumer group", lambda: self.redis.xinfo_groups(stream)
            )
        except ResponseError:  # no such key: the stream does not exist yet
            return False
        wanted = (self.consumer_group_name, self.consumer_group_name.encode())
        return any(group["name"] in wanted for group in groups)

    def with_unique_store(self, store: UniqueKeyStore) -> Self:
        """Hold unique keys in ``store``; a `RedisUniqueStore` on this server frees them with acks.

        Its keys are then freed in the round trips that acknowledge messages, which a worker
        makes anyway (see `RedisUniqueStore.free_with_acks`).
        """
        super().with_unique_store(store)
        if (
            isinstance(store, RedisUniqueStore)
            and store.connection.url == self.connection.url
            and store.connection.connection_kwargs == self.connection.connection_kwargs
        ):
            store.free_with_acks(self.ack_sender)
        return self

    async def _send_acks(self, items: list[Settlement]) -> None:
        by_level: dict[int, list[bytes]] = {}
        releases: list[KeyRelease] = []
        for item in items:
            if isinstance(item, KeyRelease):
                releases.append(item)
            else:
                by_level.setdefault(item[0], []).append(item[1])

        async def ack_and_delete(redis: aioredis.Redis) -> list[Any]:
            async with redis.pipeline(transaction=False) as pipe:
                for level, ids in by_level.items():
                    stream = self.keys.streams[level]
                    pipe.xack(stream, self.consumer_group_name, *ids)
                    pipe.xdel(stream, *ids)
                for release in releases:  # EVAL: a short script, cached by the server
                    pipe.eval(RELEASE_SCRIPT, 1, release.redis_key, release.task_id)
                return await pipe.execute()

        answers = await self.reconnector.call(
            "acknowledge messages", lambda: self._ack_connection.call(ack_and_delete)
        )
        acked_counts = answers[: 2 * len(by_level) : 2]  # each level's XACK, before its XDEL
        for (level, ids), acked in zip(by_level.items(), acked_counts, strict=True):
            if acked < len(ids):  # some were settled already: dead-lettered while they ran?
                await self._drop_dead_letters_of_acked(level, ids)

    async def _drop_dead_letters_of_acked(self, level: int, ids: list[bytes]) -> None:
        """Delete the dead letters a reclaim made of these acknowledged entries while they ran.

        Their lease lapsed while they ran (the worker's heartbeats lost for longer than
        ``lease_s``) and another worker's reclaim found them delivered ``max_deliveries``
        times; the run ended in an acknowledgement, so the dead letter would only invite a
        replay that runs the message again. Found among the dead letters made since the
        oldest of them was sent (the newest `ACKED_DEAD_LETTER_SCAN` at most).
        """
        oldest_ms = min(int(entry_id.split(b"-")[0]) for entry_id in ids)
        keys: ScriptKeys = [self.keys.dead_letters]
        args: ScriptArgs = [level, oldest_ms, ACKED_DEAD_LETTER_SCAN, *ids]
        try:
            dropped = await self.reconnector.call(
                "drop the dead letters of acknowledged messages",
                lambda: self.scripts.drop_dead_letters_of_acked(keys, args),
            )
        except ResponseError as exc:  # the acknowledgements themselves went through
            logger.warning(
                "%s", answered("look for their dead letters", self.connection.server, exc)
            )
            return
        if dropped:
            logger.warning(
                "%d message(s) ran to their acknowledgement after their lease had lapsed and "
                "another worker had dead-lettered them for their deliveries: their dead "
                "letters are deleted (entries %s of %s)",
                len(dropped),
                ", ".join(entry_id.decode() for entry_id in dropped),
                self.keys.streams[level],
            )


def _delay_ms(delay: Any) -> int:
    return round(delay_seconds(delay) * 1000)


def _chunks(messages: Sequence[BrokerMessage], size: int) -> list[Sequence[BrokerMessage]]:
    return [messages[start : start + size] for start in range(0, len(messages), size)]


def _text(error: Any) -> str:
    return error.decode(errors="replace") if isinstance(error, bytes) else str(error)


def _or_default(value: float | None, default: float) -> float:
    return default if value is None else value
