"""One ``listen()`` of a worker: batched reads, leases kept alive, expired leases taken over.

Each `StreamConsumer` is a consumer of the queue's consumer group. What it has read and not
yet settled (buffered, or running in the worker) it *holds*: the entries sit in its pending
list, and every ``heartbeat_interval_s`` it resets their idle time so that no other consumer
takes them. Every ``reclaim_interval_s`` it takes over entries whose holder stopped
heartbeating for longer than the lease (a killed worker), or dead-letters those delivered
``max_deliveries`` times already; every ``HANDED_BACK_CHECK_INTERVAL_S`` it takes what
stopping workers handed back.

A message leaves the consumer's hold in one of four ways: acknowledged, rejected, released
(its processing ended unsettled: it comes back to a worker within a lease, keeping its
delivery count), or handed back: at shutdown, or, if read and not yet yielded, when its
``listen()`` ends (closed, or dropped by its caller). A message that nothing in the process
can settle any more (every reference to its ``ack``, ``reject`` and ``release`` dropped) is
released too, so that a worker never heartbeats an entry no one will settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from taskq.acks import AckableMessage
from taskq_redis.reconnect import CONNECTION_ERRORS, AnswerLog
from taskq_redis.scripts import HANDED_BACK, RELEASED

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from taskq_redis.batching import BatchSender
    from taskq_redis.connection import SerialConnection
    from taskq_redis.options import BrokerOptions
    from taskq_redis.reconnect import Reconnector
    from taskq_redis.scripts import ScriptArgs, ScriptKeys, Scripts
    from taskq_redis.unique import KeyRelease

logger = logging.getLogger("taskq.redis")

#: The reason of a dead letter rejected without one (the receiver always gives one).
REJECTED = "rejected (no reason given)"
#: The reason of a stream entry that is not a taskq message (it has no ``m`` field).
NOT_A_MESSAGE = "the stream entry has no 'm' field: not a taskq message"
#: Ids per heartbeat script call (Lua's stack bounds the arguments of one call).
HEARTBEAT_CHUNK = 1000
#: Entries handed back per script call at shutdown.
HAND_BACK_CHUNK = 1000
#: Seconds between a consumer's looks for messages that stopping workers handed back (when
#: it looks for messages at all: a worker whose buffer is full takes nothing).
HANDED_BACK_CHECK_INTERVAL_S = 0.5

#: Seconds between unblocks of a read in flight when a consumer stops reading.
UNBLOCK_RETRY_S = 0.05

#: A read entry: priority level, entry id, message bytes.
Entry = tuple[int, bytes, bytes]
#: A message a script moved to the dead letters: its bytes (None: not a taskq message), reason.
DeadLettered = tuple[bytes | None, bytes]


class StreamConsumer:
    """Reads a queue's streams for one ``listen()`` of a broker as consumer ``name``."""

    def __init__(
        self,
        name: str,
        options: BrokerOptions,
        redis: aioredis.Redis,
        reader: SerialConnection,
        scripts: Scripts,
        reconnector: Reconnector,
        acks: BatchSender[tuple[int, bytes] | KeyRelease],
        create_groups: Callable[[], Awaitable[None]],
        dead_lettered: Callable[[list[DeadLettered]], None] | None = None,
    ) -> None:
        """Consume as ``name`` with the broker's settings and its Redis machinery.

        ``redis``, ``scripts`` and ``reconnector`` are the broker's client, Lua scripts and
        reconnect policy; ``reader`` a connection of this consumer's own for its blocking reads,
        so that `close` can unblock its read (``CLIENT UNBLOCK``) instead of leaving one that
        would take messages no one sees; ``acks`` batches acknowledgements; ``create_groups``
        creates the consumer group again when Redis lost it; ``dead_lettered`` is told of the
        messages the scripts moved to the dead letters after ``max_deliveries``. Starts
        heartbeating what it will hold.
        """
        self.name = name
        self.options = options
        self.redis = redis
        self.scripts = scripts
        self.reconnector = reconnector
        self.acks = acks
        self._create_groups = create_groups
        self._dead_lettered = dead_lettered
        self.buffer: deque[Entry] = deque()
        self.held: list[set[bytes]] = [set() for _ in options.keys.streams]
        self.closed = False
        #: Whether ``listen()`` still yields this consumer's messages (False once it ended).
        self.reading = True
        self._next_reclaim = 0.0
        self._next_handed_back_check = 0.0
        self._loop = asyncio.get_running_loop()
        self._releasing: set[asyncio.Task[None]] = set()
        #: Logs what Redis answers when it refuses releases, once per condition.
        self.refusals = AnswerLog(reconnector.server, "release messages")
        self._read_refusals = AnswerLog(reconnector.server, "read messages")
        self._beat_refusals = AnswerLog(reconnector.server, "extend the leases of held messages")
        self._dead_letter_refusals = AnswerLog(reconnector.server, "dead-letter messages")
        self._fetching: asyncio.Task[None] | None = None
        self._give_up_after_s = 0.0  # set by `stop_reading`, for the leaving
        self._heartbeat = asyncio.ensure_future(self._beat())
        self._reader = reader
        self._reader_id: int | None = None
        streams = options.keys.highest_first
        self._read_from = dict.fromkeys(streams, ">")
        self._level_of = {key.encode(): options.keys.streams.index(key) for key in streams}

    async def messages(self) -> AsyncGenerator[AckableMessage, None]:
        """Yield each message read, highest priority level first within a batch, until closed."""
        buffer = self.buffer
        while self.reading:
            if not buffer:
                await self._refill()
                continue
            level, entry_id, payload = buffer.popleft()
            # no local keeps the message: when the worker drops it, `_Settler` sees that
            yield _Settler(self, level, entry_id).message(payload)

    async def stop_reading(self, give_up_after_s: float) -> bool:
        """End reading for a ``listen()`` that ended: hand back what it read and did not yield.

        Those messages go to other workers at once, their delivery undone, as at shutdown.
        The messages it yielded stay held (heartbeated) until settled; once none is left
        (now, or at a later heartbeat), the consumer closes and leaves the group. A read in
        flight is unblocked and allowed to finish first, so that what it took is handed back
        too. If Redis does not answer within ``give_up_after_s``, the unstarted messages stop
        being held: other workers take them over when their lease expires.

        Returns:
            Whether the consumer is closed (else it still holds messages it yielded).
        """
        if not self.reading:
            return self.closed
        self.reading = False
        self._give_up_after_s = give_up_after_s
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a listen() finalized after its loop closed: nothing can be sent
            return False
        await self._finish_fetch()
        unstarted = list(self.buffer)
        yielded_unsettled = sum(map(len, self.held)) > len(unstarted)
        try:
            handed = await self.reconnector.call(
                "hand back unstarted messages",
                functools.partial(self._hand_back_unstarted, unstarted)
                if yielded_unsettled
                else self.hand_back,
                give_up_after_s=give_up_after_s,
            )
        except CONNECTION_ERRORS:
            logger.warning(
                "Could not hand back %d message(s) read for a listen() that ended (Redis does "
                "not answer): other workers take them over when their lease (%g s) expires",
                len(unstarted),
                self.options.lease_s,
            )
        except ResponseError as exc:  # up but refusing (an ACL rule, say)
            AnswerLog(self.reconnector.server, "hand back unstarted messages").failed(
                exc,
                f"other workers take them over when their lease ({self.options.lease_s:g} s) "
                "expires",
            )
        else:
            if handed:
                logger.info("Handed back %d message(s) read for a listen() that ended", handed)
        # no longer this consumer's, whether handed back or left to expire: not heartbeated
        for level, entry_id, _ in unstarted:
            self.held[level].discard(entry_id)
        self.buffer.clear()
        if yielded_unsettled:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self._reader.close()
            return False
        await self.close()
        return True

    async def ack(self, level: int, entry_id: bytes) -> None:
        """Acknowledge and delete the entry (batched with other acknowledgements)."""
        self.held[level].discard(entry_id)
        await self.acks.submit((level, entry_id))

    async def reject(self, level: int, entry_id: bytes, reason: str = REJECTED) -> None:
        """Move the entry to the dead letters with ``reason``, acknowledging it, in one step.

        If Redis refuses the dead letter (out of memory, say), nothing changes in Redis: the
        entry stays pending, unheartbeated, and comes back to a worker once its lease expires.
        """
        self.held[level].discard(entry_id)
        options = self.options
        keys: ScriptKeys = [options.keys.streams[level], options.keys.dead_letters]
        args: ScriptArgs = [options.consumer_group_name, entry_id, reason, level, self.name]
        try:
            await self.reconnector.call(
                "dead-letter a rejected message", lambda: self.scripts.reject(keys, args)
            )
        except ResponseError as exc:  # the same answer for every message meanwhile
            self._dead_letter_refusals.failed(
                exc,
                f"the messages stay pending: they come back to a worker when their lease "
                f"({options.lease_s:g} s) expires",
            )
        else:
            self._dead_letter_refusals.succeeded()

    async def release(self, level: int, entry_id: bytes) -> None:
        """Give the entry up unsettled: any worker takes it again within a lease.

        The consumer stops holding (and heartbeating) it at once; in Redis it moves to the
        `RELEASED` consumer with an idle time of ``reclaim_interval_s``, so the reclaims of
        live workers take it between ``lease_s - reclaim_interval_s`` and ``lease_s`` later
        (a pause that spares ``max_deliveries`` when the cause, a result backend down say,
        lasts a while). Its delivery count stays as it is. If Redis does not answer, the
        entry stays pending unheartbeated and is taken over once its lease expires.
        """
        if entry_id not in self.held[level]:
            return  # settled, handed back or lost meanwhile
        self.held[level].discard(entry_id)
        options = self.options
        idle_ms = min(options.lease_ms, round(options.reclaim_interval_s * 1000))
        try:
            await self.reconnector.call(
                "release a message",
                functools.partial(self._move, level, [entry_id], RELEASED, idle_ms, 0),
            )
        except CONNECTION_ERRORS:
            logger.warning(
                "Could not release entry %s (Redis does not answer): another worker takes it "
                "over when its lease (%g s) expires",
                entry_id.decode(),
                options.lease_s,
            )
        except ResponseError as exc:  # up but refusing: the same answer for every message
            self.refusals.failed(
                exc,
                f"the messages stay pending: another worker takes them over when their lease "
                f"({options.lease_s:g} s) expires",
            )
        else:
            self.refusals.succeeded()

    def _release_dropped(self, level: int, entry_id: bytes) -> None:
        """Release an entry that no one can settle any more (its message was dropped)."""
        if self.closed or entry_id not in self.held[level]:
            return
        logger.warning(
            "Entry %s of %s was dropped unsettled (neither acknowledged, rejected nor "
            "released): released for another delivery",
            entry_id.decode(),
            self.options.keys.streams[level],
        )
        task = asyncio.ensure_future(self.release(level, entry_id))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _move(
        self, level: int, ids: list[bytes], to: str, idle_ms: int, undo_deliveries: int
    ) -> int:
        options = self.options
        args: ScriptArgs = [
            options.consumer_group_name,
            self.name,
            to,
            idle_ms,
            undo_deliveries,
            *ids,
        ]
        return int(await self.scripts.release([options.keys.streams[level]], args))

    async def close(self) -> None:
        """Stop reading and heartbeating (what is held stays pending: see `hand_back`).

        A read waiting for messages is unblocked and allowed to finish, so that whatever it
        took is known to be held by this consumer.
        """
        self.closed = True
        self.reading = False
        await self._finish_fetch()
        self._heartbeat.cancel()
        await asyncio.gather(self._heartbeat, *self._releasing, return_exceptions=True)
        with contextlib.suppress(*CONNECTION_ERRORS):
            await self._reader.close()

    async def _finish_fetch(self) -> None:
        """Unblock the read in flight, if any, and wait for it to finish.

        Called once reading stopped, so no new read blocks. The unblock is repeated: one sent
        while the read's command is still on its way to Redis unblocks nothing.
        """
        fetching = self._fetching
        deadline = time.monotonic() + self.options.block_ms / 1000 + 5
        while fetching is not None and not fetching.done():
            if self._reader_id is not None:
                with contextlib.suppress(*CONNECTION_ERRORS, ResponseError):
                    await self.redis.client_unblock(self._reader_id)
            left = deadline - time.monotonic()
            if left <= 0:
                fetching.cancel()
                break
            await asyncio.wait((fetching,), timeout=min(left, UNBLOCK_RETRY_S))

    async def hand_back(self) -> int:
        """Hand everything this consumer still holds to other workers; return how many.

        Each entry keeps its id (its place in its stream) and moves to `HANDED_BACK`, where
        live workers take it within about ``HANDED_BACK_CHECK_INTERVAL_S`` plus a read's
        ``block_ms``. A message that started running keeps its delivery count, so one that
        stops its worker every time reaches the dead letters after ``max_deliveries``; one
        still in the buffer, never started, has that delivery undone, so a restarting worker
        never pushes a message it did not run towards the dead letters.
        """
        options = self.options
        handed = await self._hand_back_unstarted(list(self.buffer))
        self.buffer.clear()
        group, lease_ms = options.consumer_group_name, options.lease_ms
        args: ScriptArgs = [group, self.name, lease_ms, HAND_BACK_CHUNK]
        for stream in options.keys.streams:
            while True:
                moved = int(await self.scripts.hand_back([stream], args))
                handed += moved
                if moved < HAND_BACK_CHUNK:
                    break
        for held in self.held:
            held.clear()
        return handed

    async def _hand_back_unstarted(self, entries: list[Entry]) -> int:
        """Hand back read entries never yielded, undoing their delivery; return how many."""
        handed = 0
        unstarted: list[list[bytes]] = [[] for _ in self.options.keys.streams]
        for level, entry_id, _ in entries:
            unstarted[level].append(entry_id)
        for level, ids in enumerate(unstarted):
            for chunk in _chunks(ids, HAND_BACK_CHUNK):
                handed += await self._move(level, chunk, HANDED_BACK, self.options.lease_ms, 1)
        return handed

    # -- reading -------------------------------------------------------------------------------

    async def _refill(self) -> None:
        """Wait until a fetch put messages in the buffer (or found none within ``block_ms``).

        The fetch runs as a task of its own that a cancelled ``listen()`` leaves running: it
        ends within ``block_ms``, and `stop_reading` or `close` waits for it.
        """
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.ensure_future(self._fetch())
        await asyncio.wait((self._fetching,))

    async def _fetch(self) -> None:
        try:
            claimed = await self._take_back()
            if claimed:
                self.buffer.extend(claimed)
                return
            self.buffer.extend(await self._read())
        except CONNECTION_ERRORS:  # closed during an outage
            return
        except ResponseError as exc:
            await self._recover(exc)
        else:
            self._read_refusals.succeeded()

    async def _read(self) -> list[Entry]:
        response = await self.reconnector.call("read messages", self._read_once)
        entries: list[Entry] = []
        for key, items in response or ():
            level = self._level_of[key]
            held = self.held[level]
            for entry_id, fields in items:
                payload = fields.get(b"m") if fields else None
                if payload is None:
                    await self._reject_foreign(level, entry_id)
                    continue
                held.add(entry_id)
                entries.append((level, entry_id, payload))
        if len(response or ()) > 1:
            entries.sort(key=_highest_level_first)
        return entries

    async def _read_once(self) -> Any:
        try:
            return await self._reader.call(self._read_group, wait_s=self.options.block_ms / 1000)
        except CONNECTION_ERRORS:
            self._reader_id = None  # the next connection has another id
            raise

    async def _read_group(self, reader: aioredis.Redis) -> Any:
        options = self.options
        if self._reader_id is None:
            self._reader_id = int(await reader.client_id())
        if not self.reading:  # stopped meanwhile: a read now would wait for nothing
            return None
        return await reader.xreadgroup(
            options.consumer_group_name,
            self.name,
            self._read_from,  # type: ignore[arg-type]  # redis-py's hint is too narrow
            count=options.batch_size,
            block=options.block_ms,
        )

    async def _take_back(self) -> list[Entry]:
        """What stopping workers handed back, or else expired leases, when it is time to look.

        A look that found a full batch looks again at the next fetch, so that a backlog (many
        messages released at once, say) is taken at the pace of the worker, not of the timers.
        """
        now = time.monotonic()
        claimed: list[Entry] = []
        if now >= self._next_handed_back_check:
            self._next_handed_back_check = now + HANDED_BACK_CHECK_INTERVAL_S
            claimed = await self._take_handed_back()
        if not claimed and now >= self._next_reclaim:
            self._next_reclaim = now + self.options.reclaim_interval_s
            claimed = await self._reclaim()
        return claimed

    async def _take_handed_back(self) -> list[Entry]:
        options = self.options
        keys: ScriptKeys = [options.keys.dead_letters, *options.keys.streams]
        args: ScriptArgs = [
            options.consumer_group_name,
            self.name,
            options.batch_size,
            options.max_deliveries or 0,
        ]
        dead, entries, refused = await self.reconnector.call(
            "take handed-back messages",
            functools.partial(self.scripts.take_handed_back, keys, args),
        )
        self._settle_dead_lettered(dead, "handed back by stopping workers", refused)
        if len(dead) + len(entries) >= options.batch_size:
            self._next_handed_back_check = 0.0  # more may wait: look again at the next fetch
        claimed: list[Entry] = []
        for level, (entry_id, fields) in entries:
            payload = await self._held_payload(int(level), entry_id, fields)
            if payload is not None:
                claimed.append((int(level), entry_id, payload))
        return claimed

    async def _held_payload(self, level: int, entry_id: bytes, fields: Any) -> bytes | None:
        """The message of an entry a script claimed (now held), or None if it has none.

        None too for an entry this consumer holds already (its lease lapsed while it ran,
        heartbeats lost in an outage say, and this consumer claimed it back): it runs once.
        """
        if entry_id in self.held[level]:
            return None
        payload = _field(fields, b"m")
        if payload is None:
            await self._reject_foreign(level, entry_id)
            return None
        self.held[level].add(entry_id)
        return payload

    def _settle_dead_lettered(
        self, dead: list[DeadLettered], how: str, refused: bytes | None
    ) -> None:
        """Log the messages a script dead-lettered and tell ``dead_lettered`` of them.

        ``refused``: what Redis answered a dead letter it refused (out of memory, say), if
        any; those messages stay pending, dead-lettered by a later look.
        """
        if refused is None:
            if dead:
                self._dead_letter_refusals.succeeded()
        else:
            self._dead_letter_refusals.failed(
                ResponseError(refused.decode(errors="replace")),
                "those messages stay pending and are dead-lettered once Redis accepts it",
            )
        if dead:
            if self._dead_lettered is not None:
                self._dead_lettered(dead)
            logger.warning(
                "%d message(s) %s were delivered %d times without being acknowledged: moved "
                "to the dead letters (%s)",
                len(dead),
                how,
                self.options.max_deliveries,
                self.options.keys.dead_letters,
            )

    async def _reclaim(self) -> list[Entry]:
        """Take over entries whose lease expired (or dead-letter those delivered too often)."""
        options = self.options
        claimed: list[Entry] = []
        handed_back = 0  # of those claimed: handed back by a stopping worker, not expired
        for stream in options.keys.highest_first:
            level = options.keys.streams.index(stream)
            keys: ScriptKeys = [stream, options.keys.dead_letters]
            args: ScriptArgs = [
                options.consumer_group_name,
                self.name,
                options.lease_ms,
                options.batch_size,
                options.max_deliveries or 0,
                level,
            ]
            dead, entries, handed, refused = await self.reconnector.call(
                "take over expired messages",
                functools.partial(self.scripts.reclaim, keys, args),
            )
            self._settle_dead_lettered(dead, f"of {stream}", refused)
            if len(dead) + len(entries) >= options.batch_size:
                self._next_reclaim = 0.0  # more may wait: look again at the next fetch
            handed_ids = set(handed)
            for entry_id, fields in entries:
                payload = await self._held_payload(level, entry_id, fields)
                if payload is not None:
                    claimed.append((level, entry_id, payload))
                    if entry_id in handed_ids:
                        handed_back += 1
        expired = len(claimed) - handed_back
        if expired:
            logger.warning(
                "Took over %d message(s) whose lease (%g s) had expired: their worker stopped "
                "(or released them) without acknowledging them",
                expired,
                options.lease_s,
            )
        if handed_back:
            logger.info("Took %d message(s) a stopping worker handed back", handed_back)
        return claimed

    async def _reject_foreign(self, level: int, entry_id: bytes) -> None:
        logger.error(
            "Entry %s of %s has no 'm' field (not written by taskq): moved to the dead letters",
            entry_id.decode(),
            self.options.keys.streams[level],
        )
        await self.reject(level, entry_id, NOT_A_MESSAGE)

    async def _recover(self, error: ResponseError) -> None:
        """Answer an error reply: recreate a lost group (a Redis restarted empty), else wait."""
        if "NOGROUP" in str(error):
            logger.warning(
                "The consumer group %r is gone (Redis restarted without its data?): creating "
                "it again",
                self.options.consumer_group_name,
            )
            await self._create_groups()
            return
        self._read_refusals.failed(
            error, f"trying again every {self.options.reconnect_max_delay_s:g} s"
        )
        await asyncio.sleep(self.options.reconnect_max_delay_s)

    # -- leases --------------------------------------------------------------------------------

    async def _beat(self) -> None:
        while self.reading or any(self.held):
            await asyncio.sleep(self.options.heartbeat_interval_s)
            if self.closed:
                return
            try:
                await self.heartbeat()
            except CONNECTION_ERRORS:
                return  # closed during an outage
            except ResponseError as exc:  # up but refusing: the same answer every beat
                self._beat_refusals.failed(
                    exc, "trying again; held messages may be taken over once their lease expires"
                )
                continue
            except Exception:
                logger.exception("Extending the leases of held messages failed; trying again")
            else:
                self._beat_refusals.succeeded()
        # its listen() ended and what it yielded is settled: leave the group
        self.closed = True
        try:
            await self.reconnector.call(
                "leave the group", self.hand_back, give_up_after_s=self._give_up_after_s
            )
        except CONNECTION_ERRORS:
            return  # what it held in Redis is taken over once its lease expires
        except ResponseError as exc:
            AnswerLog(self.reconnector.server, "leave the consumer group").failed(
                exc, "what it held is taken over once its lease expires"
            )

    async def heartbeat(self) -> None:
        """Restart the lease of every entry this consumer holds; drop those it lost."""
        options = self.options
        for level, held in enumerate(self.held):
            for chunk in _chunks(list(held), HEARTBEAT_CHUNK):
                args: ScriptArgs = [options.consumer_group_name, self.name, *chunk]
                stream = options.keys.streams[level]
                kept = await self.reconnector.call(
                    "extend leases", functools.partial(self.scripts.heartbeat, [stream], args)
                )
                if len(kept) < len(chunk):
                    self._forget_lost(level, set(chunk) - set(kept))

    def _forget_lost(self, level: int, ids: set[bytes]) -> None:
        lost = ids & self.held[level]  # not those settled during the heartbeat
        if not lost:
            return
        self.held[level] -= lost
        unstarted = [entry for entry in self.buffer if entry[1] in lost]
        for entry in unstarted:
            self.buffer.remove(entry)
        logger.warning(
            "The lease of %d message(s) expired before they were acknowledged (%d not started "
            "yet, dropped here); another worker took them, so those started may run twice: "
            "raise lease_s if tasks block the event loop or Redis was unreachable that long",
            len(lost),
            len(unstarted),
        )


class _Settler:
    """Settles one delivered entry; once nothing references it, releases it if unsettled.

    The message's ``ack``, ``reject`` and ``release`` are this object's methods, so it lives
    exactly as long as something can still settle the message. When it goes (the receiver,
    or a loop of the user's, finished with the message without settling it), nobody can
    settle the entry any more: heartbeating it on would hold it for as long as the worker
    lives, so it is released instead.
    """

    __slots__ = ("consumer", "entry_id", "level", "settled")

    def __init__(self, consumer: StreamConsumer, level: int, entry_id: bytes) -> None:
        self.consumer = consumer
        self.level = level
        self.entry_id = entry_id
        #: Whether this delivery was settled through it: once released, the same entry may
        #: come back to this consumer as a new delivery, which this one must leave alone.
        self.settled = False

    def message(self, payload: bytes) -> AckableMessage:
        """The message to yield, settled through this object."""
        return AckableMessage(payload, self.ack, self.reject, self.release)

    async def ack(self) -> None:
        self.settled = True
        await self.consumer.ack(self.level, self.entry_id)

    async def reject(self, reason: str | None = None) -> None:
        self.settled = True
        await self.consumer.reject(self.level, self.entry_id, reason or REJECTED)

    async def release(self) -> None:
        self.settled = True
        await self.consumer.release(self.level, self.entry_id)

    def __del__(self) -> None:
        consumer = self.consumer
        if self.settled or self.entry_id not in consumer.held[self.level]:
            return  # settled: the usual case, decided without touching the loop
        with contextlib.suppress(RuntimeError):  # the loop closed: the hand-back took it
            consumer._loop.call_soon_threadsafe(
                consumer._release_dropped, self.level, self.entry_id
            )


def _highest_level_first(entry: Entry) -> int:
    return -entry[0]


def _field(fields: Any, name: bytes) -> bytes | None:
    """The value of ``name`` in a flat ``[field, value, ...]`` list from a script."""
    for index in range(0, len(fields) - 1, 2):
        if fields[index] == name:
            return bytes(fields[index + 1])
    return None


def _chunks(items: list[bytes], size: int) -> Iterable[list[bytes]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
