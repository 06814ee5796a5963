"""`RedisScheduleSource`: schedules kept in Redis, shared by schedulers, claimed once per fire."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from taskq.abc.schedule_source import ScheduleSource
from taskq.capabilities import Capability
from taskq.exceptions import InvalidScheduleError
from taskq.scheduled_task import ScheduledTask
from taskq.task_events import quoted
from taskq_scheduler._codec import decode_schedule, encode_schedule
from taskq_scheduler.errors import ScheduleKeyTypeError, ScheduleSourceUnavailableError
from taskq_scheduler.fire_times import check_schedule

try:
    import redis.asyncio as aioredis
    from redis.exceptions import ResponseError

    from taskq_redis.connection import DEFAULT_URL, RedisConnection
    from taskq_redis.errors import RedisUnavailableError
    from taskq_redis.reconnect import Reconnector
    from taskq_redis.retrying import (
        DEFAULT_RECONNECT_MAX_DELAY_S,
        DEFAULT_RECONNECT_TIMEOUT_S,
        RetryingCalls,
    )
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess
    if (exc.name or "").partition(".")[0] not in ("redis", "taskq_redis"):
        raise
    raise ImportError(
        "RedisScheduleSource needs taskq-redis, which is not installed: "
        "pip install 'taskq-scheduler[redis]'"
    ) from exc

logger = logging.getLogger("taskq.scheduler")

DEFAULT_PREFIX = "taskq-schedules"

# KEYS: schedules hash, fires hash; ARGV: schedule id, fire time in ms.
# A fire is claimed once: only while its schedule exists, and only if it is later than the
# last fire claimed for that schedule. A last claim that is not a number (written by other
# code) is replaced: 2 says so.
_CLAIM = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local last = redis.call('HGET', KEYS[2], ARGV[1])
local last_ms = tonumber(last)
if last_ms and last_ms >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if last and not last_ms then return 2 end
return 1
"""
_REPLACED_CLAIM = 2

#: What the source keeps in each of its keys (all hashes), by the end of the key's name.
_KEPT = {"schedules": "the schedules", "fires": "the last claimed fire of each schedule"}

_Result = TypeVar("_Result")


class RedisScheduleSourceUnavailableError(RedisUnavailableError, ScheduleSourceUnavailableError):
    """The schedule source's Redis did not answer.

    Both a `ScheduleSourceUnavailableError` (as before) and a
    `taskq_redis.RedisUnavailableError` (as every Redis outage).
    """

    __template__ = "the schedule store's Redis server does not answer"


class RedisScheduleSource(ScheduleSource):
    """Keeps schedules in Redis: added at runtime, kept across restarts, shared by schedulers.

    Schedules are the hash ``{prefix}:schedules`` (schedule id → JSON); the last fire claimed
    for each is in ``{prefix}:fires`` (schedule id → milliseconds). `claim_fire` is one Lua
    script, so when several schedulers share the source each fire is claimed, and sent, by
    one of them; a restarted scheduler does not send again a fire it already sent. A one-shot
    schedule is deleted once sent.

    Its calls ride out a Redis outage as the broker's calls do: one that fails on the
    connection is retried with capped exponential backoff (logged as one warning when the
    outage starts and one when Redis answers again, logger ``taskq.redis``) for
    ``reconnect_timeout_s``, then raises `RedisScheduleSourceUnavailableError`; once a call of
    an outage gave up, the next ones try once until Redis answers. So a fire due during a short
    outage is claimed and sent when Redis is back. `get_schedules` alone does not retry: the
    scheduler keeps its last read and reads again at its next update, without holding up the
    fires of its other sources.

    A key of the prefix that holds another Redis type than a hash (a list or a string written
    there by other code) makes its calls raise `ScheduleKeyTypeError`, naming the key and
    what it holds; Redis answered, so that is not an outage and is not retried.

    Args:
        url: The Redis server, ``redis://[[user]:[password]@]host[:port][/db]``, ``rediss://``
            for TLS or ``unix://``.
        prefix: Start of the keys; schedulers sharing schedules must share it.
        reconnect_max_delay_s: Longest pause between reconnection attempts. Default 5.
        reconnect_timeout_s: Seconds a call keeps retrying while Redis does not answer, before
            raising `RedisScheduleSourceUnavailableError`. Default 30; 0: no retry.
        **connection_kwargs: Passed to redis-py's ``BlockingConnectionPool``
            (``max_connections``, ``socket_timeout``, ``password``, ...).
            ``decode_responses`` must stay false.

    Raises:
        ValueError: A bad URL scheme, an empty ``prefix``, a bad reconnect setting or
            ``decode_responses=True``.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.DYNAMIC, Capability.PERSISTENT}
    )

    def __init__(
        self,
        url: str = DEFAULT_URL,
        prefix: str = DEFAULT_PREFIX,
        *,
        reconnect_max_delay_s: float = DEFAULT_RECONNECT_MAX_DELAY_S,
        reconnect_timeout_s: float = DEFAULT_RECONNECT_TIMEOUT_S,
        **connection_kwargs: Any,
    ) -> None:
        if not prefix:
            raise ValueError("prefix must not be empty")
        self.connection = RedisConnection(url, "RedisScheduleSource", **connection_kwargs)
        self.url = url
        self.prefix = prefix
        self.schedules_key = f"{prefix}:schedules"
        self.fires_key = f"{prefix}:fires"
        self.calls = RetryingCalls(
            self.connection.server,
            reconnect_max_delay_s,
            reconnect_timeout_s,
            RedisScheduleSourceUnavailableError,
            ScheduleSourceUnavailableError,
            self.connection,
        )
        self.reconnector: Reconnector = self.calls.reconnector
        self._started = False
        # the last read: schedule id -> (digest of its stored bytes, its schedule or None)
        self._decoded: dict[bytes, tuple[bytes, ScheduledTask | None]] = {}

    async def startup(self) -> None:
        """Connect, and check that the server answers (retrying for ``reconnect_timeout_s``).

        Raises:
            RedisScheduleSourceUnavailableError: The server does not answer at ``url``.
        """
        self.reconnector.closed = False
        try:
            await self.calls("connect", lambda: self.connection.client.ping())
        except ScheduleSourceUnavailableError:
            await self.connection.close()
            raise
        self._started = True

    def __repr__(self) -> str:
        return f"RedisScheduleSource({self.connection.server!r}, prefix={quoted(self.prefix)})"

    async def shutdown(self) -> None:
        """Close the connections."""
        self._started = False
        self.reconnector.closed = True
        await self.connection.close()

    async def get_schedules(self) -> list[ScheduledTask]:
        """Return every stored schedule; an entry that is not one is logged once and skipped.

        Tried once: the scheduler keeps its last read when this fails. Entries unchanged since
        the last read are not decoded again.
        """
        stored = await self._call(
            "read the schedules", lambda: self._client().hgetall(self.schedules_key), retry=False
        )
        previous, self._decoded = self._decoded, {}
        schedules: list[ScheduledTask] = []
        for field, data in stored.items():
            schedule_id = field.encode() if isinstance(field, str) else field
            raw = data.encode() if isinstance(data, str) else data
            digest = hashlib.blake2b(raw, digest_size=16).digest()
            known = previous.get(schedule_id)
            if known is not None and known[0] == digest:
                schedule = known[1]
            else:
                schedule = self._decode(schedule_id, raw)
            self._decoded[schedule_id] = (digest, schedule)
            if schedule is not None:
                schedules.append(schedule)
        return schedules

    def _decode(self, schedule_id: bytes, data: bytes) -> ScheduledTask | None:
        """Return the schedule stored under ``schedule_id``, or log why there is none."""
        try:
            schedule = decode_schedule(data)
            if schedule.schedule_id.encode() != schedule_id:
                raise InvalidScheduleError(
                    reason=f"it is stored under the id {quoted(schedule_id)} but names the "
                    f"schedule_id {quoted(schedule.schedule_id)}"
                )
        except Exception as exc:  # any stored garbage: JSON too deep, numbers too large
            logger.error("Skipping undecodable schedule %s: %s", quoted(schedule_id), quoted(exc))
            return None
        return schedule

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        """Store ``schedule`` (replacing the one with its id); `InvalidScheduleError` if unfireable.

        Its claimed fires are kept: adding the same schedule again at every start of an
        application does not make a fire already sent go out again.
        """
        check_schedule(schedule)
        data = encode_schedule(schedule)
        await self._call(
            f"store schedule {quoted(schedule.schedule_id)}",
            lambda: self._client().hset(self.schedules_key, schedule.schedule_id, data),
        )

    async def delete_schedule(self, schedule_id: str) -> None:
        """Delete the schedule and its claims (no error if there is none)."""

        async def delete() -> None:
            async with self._client().pipeline(transaction=True) as pipe:
                pipe.hdel(self.schedules_key, schedule_id)
                pipe.hdel(self.fires_key, schedule_id)
                await pipe.execute()

        await self._call(f"delete schedule {quoted(schedule_id)}", delete)

    async def claim_fire(self, schedule_id: str, fire_time: datetime) -> bool:
        """Claim the fire atomically: once, while the schedule exists, never an older one."""
        milliseconds = round(fire_time.timestamp() * 1000)
        claimed = await self._call(
            f"claim a fire of schedule {quoted(schedule_id)}",
            lambda: self._client().eval(
                _CLAIM, 2, self.schedules_key, self.fires_key, schedule_id, milliseconds
            ),
        )
        if claimed == _REPLACED_CLAIM:
            logger.warning(
                "The last claimed fire of schedule %s in %s was not a number: replaced by "
                "this fire's",
                quoted(schedule_id),
                self.fires_key,
            )
        return bool(claimed)

    async def post_send(self, task: ScheduledTask) -> None:
        """Delete a one-shot schedule once sent."""
        if task.time is not None:
            await self.delete_schedule(task.schedule_id)

    async def _call(
        self, action: str, operation: Callable[[], Awaitable[_Result]], *, retry: bool = True
    ) -> _Result:
        """Run ``operation`` through `RetryingCalls`; a key of the wrong type raises typed.

        Raises:
            ScheduleKeyTypeError: A key of the prefix is not a hash.
            ScheduleSourceUnavailableError: Redis did not answer, or answered another error.
        """
        try:
            return await self.calls(action, operation, retry=retry)
        except ScheduleSourceUnavailableError as exc:
            answer = exc.__cause__
            if not (isinstance(answer, ResponseError) and "WRONGTYPE" in str(answer)):
                raise
            misplaced = await self._key_type_error(action)
            if misplaced is None:  # the key was deleted or replaced since
                raise
            raise misplaced from answer

    async def _key_type_error(self, action: str) -> ScheduleKeyTypeError | None:
        """The error naming the first key of the prefix that holds another type than a hash."""

        async def types() -> list[Any]:
            async with self._client().pipeline(transaction=False) as pipe:
                pipe.type(self.schedules_key)
                pipe.type(self.fires_key)
                return await pipe.execute()

        keys = (self.schedules_key, self.fires_key)
        found = await self.calls("check the types of its keys", types, retry=False)
        for key, kind in zip(keys, found, strict=True):
            name = kind.decode() if isinstance(kind, bytes) else str(kind)
            if name in ("hash", "none"):
                continue
            kept = _KEPT[key.rpartition(":")[2]]
            return ScheduleKeyTypeError(
                f"cannot {action}: the key {quoted(key)} at {self.connection.server} holds a "
                f"{name}, not a hash: RedisScheduleSource keeps {kept} in a hash there; "
                "delete that key or give the source another prefix",
                key=key,
                found=name,
                needed="hash",
            )
        return None

    def _client(self) -> aioredis.Redis:
        if not self._started:
            raise ScheduleSourceUnavailableError(
                "RedisScheduleSource is not started: call startup() (the scheduler does)"
            )
        return self.connection.client
