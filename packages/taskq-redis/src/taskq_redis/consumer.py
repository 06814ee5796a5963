"""One ``listen()`` of a worker: batched reads, leases kept alive, expired leases taken over.

Each `StreamConsumer` is a consumer of the queue's consumer group. What it has read and not
yet settled (buffered, or running in the worker) it *holds*: the entries sit in its pending
list, and every ``heartbeat_interval_s`` it resets their idle time so that no other consumer
takes them. Every ``reclaim_interval_s`` it takes over entries whose holder stopped
heartbeating for longer than the lease (a killed worker), or dead-letters those delivered
``max_deliveries`` times already. At shutdown it hands back what it still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Iterable
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from taskq.acks import AckableMessage
from taskq_redis.reconnect import CONNECTION_ERRORS

if TYPE_CHECKING:
    from taskq_redis.broker import RedisStreamBroker
    from taskq_redis.scripts import ScriptArgs, ScriptKeys

logger = logging.getLogger("taskq.redis")

#: The reason a dead letter rejected by a worker carries (the worker's log says why).
REJECTED = "rejected by the worker (see its log for the task id and why)"
#: The reason of a stream entry that is not a taskq message (it has no ``m`` field).
NOT_A_MESSAGE = "the stream entry has no 'm' field: not a taskq message"
#: Ids per heartbeat script call (Lua's stack bounds the arguments of one call).
HEARTBEAT_CHUNK = 1000
#: Entries handed back per script call at shutdown.
HAND_BACK_CHUNK = 1000

#: A read entry: priority level, entry id, message bytes.
Entry = tuple[int, bytes, bytes]


class StreamConsumer:
    """Reads a queue's streams for one ``listen()`` of ``broker`` as consumer ``name``."""

    def __init__(self, broker: RedisStreamBroker, name: str) -> None:
        """Consume for ``broker``; start heartbeating what this consumer will hold."""
        self.broker = broker
        self.name = name
        self.buffer: deque[Entry] = deque()
        self.held: list[set[bytes]] = [set() for _ in broker.keys.streams]
        self.closed = False
        self._next_reclaim = 0.0
        self._fetching: asyncio.Task[None] | None = None
        self._heartbeat = asyncio.ensure_future(self._beat())
        # blocking reads go through a connection of their own, so that `close` can unblock
        # its read (CLIENT UNBLOCK) instead of leaving one that would take messages no one sees
        self._reader = broker.redis.client()
        self._reader_id: int | None = None
        streams = broker.keys.highest_first
        self._read_from = dict.fromkeys(streams, ">")
        self._level_of = {key.encode(): broker.keys.streams.index(key) for key in streams}

    async def messages(self) -> AsyncGenerator[AckableMessage, None]:
        """Yield each message read, highest priority level first within a batch, until closed."""
        buffer = self.buffer
        while not self.closed:
            if not buffer:
                await self._refill()
                continue
            level, entry_id, payload = buffer.popleft()
            yield AckableMessage(
                payload,
                functools.partial(self.ack, level, entry_id),
                functools.partial(self.reject, level, entry_id),
            )

    async def ack(self, level: int, entry_id: bytes) -> None:
        """Acknowledge and delete the entry (batched with other acknowledgements)."""
        self.held[level].discard(entry_id)
        await self.broker.ack_sender.submit((level, entry_id))

    async def reject(self, level: int, entry_id: bytes, reason: str = REJECTED) -> None:
        """Move the entry to the dead letters with ``reason``, acknowledging it, in one step."""
        self.held[level].discard(entry_id)
        broker = self.broker
        keys: ScriptKeys = [broker.keys.streams[level], broker.keys.dead_letters]
        args: ScriptArgs = [broker.consumer_group_name, entry_id, reason, level, self.name]
        await broker.reconnector.call(
            "dead-letter a rejected message", lambda: broker.scripts.reject(keys, args)
        )

    async def close(self) -> None:
        """Stop reading and heartbeating (what is held stays pending: see `hand_back`).

        A read waiting for messages is unblocked and allowed to finish, so that whatever it
        took is known to be held by this consumer.
        """
        self.closed = True
        fetching = self._fetching
        if fetching is not None and not fetching.done():
            if self._reader_id is not None:
                with contextlib.suppress(*CONNECTION_ERRORS, ResponseError):
                    await self.broker.redis.client_unblock(self._reader_id)
            _, late = await asyncio.wait((fetching,), timeout=self.broker.block_ms / 1000 + 5)
            for task in late:
                task.cancel()
        self._heartbeat.cancel()
        await asyncio.gather(self._heartbeat, return_exceptions=True)
        with contextlib.suppress(*CONNECTION_ERRORS):
            await self._reader.aclose()

    async def hand_back(self) -> int:
        """Put everything this consumer still holds back in its stream; return how many."""
        broker = self.broker
        args: ScriptArgs = [broker.consumer_group_name, self.name, HAND_BACK_CHUNK]
        handed = 0
        for stream in broker.keys.streams:
            while True:
                moved = int(await broker.scripts.hand_back([stream], args))
                handed += moved
                if moved < HAND_BACK_CHUNK:
                    break
        self.buffer.clear()
        return handed

    # -- reading -------------------------------------------------------------------------------

    async def _refill(self) -> None:
        """Wait until a fetch put messages in the buffer (or found none within ``block_ms``).

        The fetch runs as a task of its own that a cancelled ``listen()`` leaves running: it
        ends within ``block_ms`` and what it read goes to the buffer, held (see `close`).
        """
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.ensure_future(self._fetch())
        await asyncio.wait((self._fetching,))

    async def _fetch(self) -> None:
        try:
            if time.monotonic() >= self._next_reclaim:
                self._next_reclaim = time.monotonic() + self.broker.reclaim_interval_s
                claimed = await self._reclaim()
                if claimed:
                    self.buffer.extend(claimed)
                    return
            self.buffer.extend(await self._read())
        except CONNECTION_ERRORS:  # closed during an outage
            return
        except ResponseError as exc:
            await self._recover(exc)

    async def _read(self) -> list[Entry]:
        broker = self.broker
        response = await broker.reconnector.call("read messages", self._read_once)
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
        broker, reader = self.broker, self._reader
        try:
            if self._reader_id is None:
                self._reader_id = int(await reader.client_id())
            return await reader.xreadgroup(
                broker.consumer_group_name,
                self.name,
                self._read_from,  # type: ignore[arg-type]  # redis-py's hint is too narrow
                count=broker.batch_size,
                block=broker.block_ms,
            )
        except CONNECTION_ERRORS:
            self._reader_id = None  # the next connection has another id
            raise

    async def _reclaim(self) -> list[Entry]:
        """Take over entries whose lease expired (or dead-letter those delivered too often)."""
        broker = self.broker
        claimed: list[Entry] = []
        for stream in broker.keys.highest_first:
            level = broker.keys.streams.index(stream)
            keys: ScriptKeys = [stream, broker.keys.dead_letters]
            args: ScriptArgs = [
                broker.consumer_group_name,
                self.name,
                broker.lease_ms,
                broker.batch_size,
                broker.max_deliveries or 0,
                level,
            ]
            dead, entries = await broker.reconnector.call(
                "take over expired messages",
                functools.partial(broker.scripts.reclaim, keys, args),
            )
            if dead:
                logger.warning(
                    "%d message(s) of %s were delivered %d times without being acknowledged: "
                    "moved to the dead letters (%s)",
                    dead,
                    stream,
                    broker.max_deliveries,
                    broker.keys.dead_letters,
                )
            for entry_id, fields in entries:
                payload = _field(fields, b"m")
                if payload is None:
                    await self._reject_foreign(level, entry_id)
                    continue
                self.held[level].add(entry_id)
                claimed.append((level, entry_id, payload))
        if claimed:
            logger.warning(
                "Took over %d message(s) whose lease (%g s) had expired: their worker stopped "
                "without acknowledging them",
                len(claimed),
                broker.lease_s,
            )
        return claimed

    async def _reject_foreign(self, level: int, entry_id: bytes) -> None:
        logger.error(
            "Entry %s of %s has no 'm' field (not written by taskq): moved to the dead letters",
            entry_id.decode(),
            self.broker.keys.streams[level],
        )
        await self.reject(level, entry_id, NOT_A_MESSAGE)

    async def _recover(self, error: ResponseError) -> None:
        """Answer an error reply: recreate a lost group (a Redis restarted empty), else wait."""
        if "NOGROUP" in str(error):
            logger.warning(
                "The consumer group %r is gone (Redis restarted without its data?): creating "
                "it again",
                self.broker.consumer_group_name,
            )
            await self.broker.create_groups()
            return
        logger.error("Redis refused to deliver messages: %s; trying again", error)
        await asyncio.sleep(self.broker.reconnect_max_delay_s)

    # -- leases --------------------------------------------------------------------------------

    async def _beat(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.broker.heartbeat_interval_s)
            try:
                await self.heartbeat()
            except CONNECTION_ERRORS:
                return  # closed during an outage
            except Exception:
                logger.exception("Extending the leases of held messages failed; trying again")

    async def heartbeat(self) -> None:
        """Restart the lease of every entry this consumer holds; drop those it lost."""
        broker = self.broker
        for level, held in enumerate(self.held):
            for chunk in _chunks(list(held), HEARTBEAT_CHUNK):
                args: ScriptArgs = [broker.consumer_group_name, self.name, *chunk]
                stream = broker.keys.streams[level]
                kept = await broker.reconnector.call(
                    "extend leases", functools.partial(broker.scripts.heartbeat, [stream], args)
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
