"""The dead letters of a queue: messages taken out of circulation, kept with why, to replay."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from taskq.abc import dead_letters as contract
from taskq_redis.errors import RedisBrokerUnavailableError, unavailable
from taskq_redis.reconnect import CONNECTION_ERRORS

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from taskq_redis.broker import RedisStreamBroker
    from taskq_redis.options import BrokerOptions
    from taskq_redis.reconnect import Reconnector
    from taskq_redis.scripts import Scripts

#: Dead letters replayed or purged per script call.
CHUNK = 500
#: A stream entry id as Redis writes it: milliseconds, then a sequence number.
_ENTRY_ID = re.compile(r"[0-9]+-[0-9]+")
#: The largest part of an entry id (Redis keeps each part in 64 bits).
_MAX_ID_PART = 2**64 - 1


@dataclass(frozen=True)
class DeadLetter(contract.DeadLetter):
    """One dead letter of a Redis queue: the stream entry it was, its level, its last consumer."""

    source_id: str
    priority_level: int
    consumer: str

    def details(self) -> dict[str, str]:
        """The consumer that held it last and the stream entry it was."""
        return {
            "consumer": self.consumer,
            "was entry": f"{self.source_id} (priority level {self.priority_level})",
        }

    @classmethod
    def from_entry(cls, entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter:
        """Read a dead-letter stream entry (``fields`` as redis-py returns them)."""

        def text(name: bytes) -> str:
            return fields.get(name, b"").decode(errors="replace")

        return cls(
            id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            payload=fields.get(b"m"),
            reason=text(b"reason"),
            dead_at=_moment(_int(text(b"dead_at_ms"))),
            source_id=text(b"source_id"),
            priority_level=_int(text(b"level")),
            consumer=text(b"consumer"),
            deliveries=_int(text(b"deliveries")),
        )


class DeadLetterQueue(contract.DeadLetterQueue):
    """List, show, replay and purge the dead letters of a broker's queue (a Redis stream).

    Replaying puts a message back at the end of the stream of its priority level as a new
    entry; each dead letter is replayed at most once, even by concurrent callers. An id that
    is not a stream entry id (``1700000000000-0``) names no dead letter: `show` returns None,
    `replay` and `purge` skip it, and `list` after it lists nothing.

    Raises (every method):
        RedisBrokerUnavailableError: Redis did not answer for the broker's ``send_timeout_s``.
    """

    def __init__(
        self,
        options: BrokerOptions,
        redis: aioredis.Redis,
        scripts: Scripts,
        reconnector: Reconnector,
    ) -> None:
        """The dead letters of the queue of ``options``, through the broker's Redis machinery.

        ``redis``, ``scripts`` and ``reconnector`` are the broker's client, Lua scripts and
        reconnect policy. `of` makes one from a broker.
        """
        self.options = options
        self.redis = redis
        self.scripts = scripts
        self.reconnector = reconnector
        self.key = options.keys.dead_letters

    @property
    def where(self) -> str:
        """The key of the dead-letter stream."""
        return self.key

    @classmethod
    def of(cls, broker: RedisStreamBroker) -> DeadLetterQueue:
        """The dead letters of ``broker``'s queue (what ``broker.dead_letters`` gives)."""
        return cls(broker.options, broker.redis, broker.scripts, broker.reconnector)

    async def count(self) -> int:
        """How many dead letters there are."""
        return int(await self._call("count dead letters", self.redis.xlen, self.key))

    async def list(self, count: int = 100, after: str | None = None) -> list[contract.DeadLetter]:
        """Up to ``count`` dead letters, oldest first, starting after the id ``after``."""
        if count < 1 or (after and not is_entry_id(after)):
            return []
        start = f"({after}" if after else "-"
        entries = await self._call(
            "list dead letters", self.redis.xrange, self.key, start, "+", count
        )
        return [DeadLetter.from_entry(entry_id, fields) for entry_id, fields in entries]

    async def show(self, dead_letter_id: str) -> contract.DeadLetter | None:
        """The dead letter ``dead_letter_id``, or None when there is none."""
        if not is_entry_id(dead_letter_id):
            return None
        entries = await self._call(
            "read a dead letter",
            self.redis.xrange,
            self.key,
            dead_letter_id,
            dead_letter_id,
        )
        return DeadLetter.from_entry(*entries[0]) if entries else None

    async def replay(self, dead_letter_ids: Iterable[str] | None = None) -> int:
        """Send these dead letters (None: all) to their queue again; return how many."""
        keys = [self.key, *self.options.keys.streams]
        replayed = 0
        async for chunk in self._chunks(dead_letter_ids):
            replayed += int(
                await self._call("replay dead letters", self.scripts.replay, keys, chunk)
            )
        return replayed

    async def purge(self, dead_letter_ids: Iterable[str] | None = None) -> int:
        """Delete these dead letters (None: all) for good; return how many."""
        if dead_letter_ids is None:
            total = await self.count()
            await self._call("purge dead letters", self.redis.delete, self.key)
            return total
        purged = 0
        async for chunk in self._chunks(dead_letter_ids):
            purged += int(await self._call("purge dead letters", self.redis.xdel, self.key, *chunk))
        return purged

    async def _chunks(self, ids: Iterable[str] | None) -> Any:
        """The ids given in chunks, or (None) the id of every dead letter there is now."""
        if ids is not None:
            given = [entry_id for entry_id in ids if is_entry_id(entry_id)]
            for start in range(0, len(given), CHUNK):
                yield given[start : start + CHUNK]
            return
        redis = self.redis
        newest = await self._call("list dead letters", redis.xrevrange, self.key, "+", "-", 1)
        if not newest:
            return
        last: bytes = newest[0][0]  # those dead-lettered meanwhile wait for another call
        from_id = "-"
        while entries := await self._call(
            "list dead letters", redis.xrange, self.key, from_id, last, CHUNK
        ):
            yield [entry_id.decode() for entry_id, _ in entries]
            from_id = "(" + entries[-1][0].decode()

    async def _call(self, action: str, method: Any, *args: Any) -> Any:
        reconnector = self.reconnector
        try:
            return await reconnector.call(
                action, lambda: method(*args), give_up_after_s=self.options.send_timeout_s
            )
        except CONNECTION_ERRORS as exc:
            raise unavailable(RedisBrokerUnavailableError, action, reconnector.server, exc) from exc


def is_entry_id(text: str) -> bool:
    """Whether ``text`` is a stream entry id, ``ms-seq`` (Redis refuses anything else)."""
    if not isinstance(text, str) or not _ENTRY_ID.fullmatch(text):
        return False
    return all(int(part) <= _MAX_ID_PART for part in text.split("-"))


def _moment(ms: int) -> datetime | None:
    """The UTC time ``ms`` milliseconds after the epoch; None if no datetime can hold it."""
    try:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):  # an entry not written by taskq
        return None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0
