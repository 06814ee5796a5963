"""`RedisEventStore`: task events and heartbeats in Redis, shared by the workers of many hosts.

Keys, all under the store's prefix ``P``:

- ``P:task:<id>``: a list of the task's events in write order, each a zero-padded write
  sequence, ``|``, the event as JSON (a list, not a sorted set: small lists are stored
  compactly whatever the size of their items); reads sort them by time, then sequence;
- ``P:summary:<id>``: a hash with the task's latest event, first and last time, event count;
- ``P:tasks`` and ``P:state:<kind>``, ``P:name:<name>``, ``P:worker:<id>``: sorted sets of
  task ids by the time of their latest event, the indexes that `tasks` pages through;
- ``P:failures``: a sorted set of the ``failed`` events by time (members as in ``P:task:<id>``);
- ``P:minute:<start>``: a hash of event counts by kind, expiring once older than the age bound;
- ``P:workers`` (a hash of heartbeats) and ``P:workers:seen`` (worker ids by time);
- ``P:sequence`` and ``P:count``: the write sequence and the number of events kept.

Each batch is one script run: the events, the indexes, the heartbeats, then the retention.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

from taskq.abc.event_store import DEFAULT_FAILURES, AsyncEventStore
from taskq.capabilities import Capability
from taskq.event_stores.urls import url_retention
from taskq.exceptions import EventStoreError
from taskq.task_events import (
    LATEST_TASKS,
    EventKind,
    MinuteRate,
    Retention,
    TaskEvent,
    TaskPage,
    TaskQuery,
    TaskSummary,
    WorkerHeartbeat,
    WorkerStatus,
    last_minutes,
    minute_of,
    page_cursor,
    read_cursor,
)
from taskq_redis.connection import DEFAULT_URL, RedisConnection
from taskq_redis.errors import EventStoreUnavailableError, translated

#: Default key prefix.
DEFAULT_PREFIX = "taskq:events"
#: Tasks one write drops at most; a larger backlog (a lowered bound) goes over the next writes.
RETENTION_BATCH = 1000
#: Candidate tasks `RedisEventStore.tasks` reads from an index at a time.
SCAN_CHUNK = 200
# KEYS: none (every key derives from the prefix, ARGV[1]). ARGV: prefix, max events, oldest
# time allowed, max age, events in the batch, tasks, (minute, kind) counts, heartbeats, tasks to
# drop at most; then per task: id, and of its latest event in the batch: name, kind, worker,
# time, JSON; its earliest time, its event count n, and n times (batch position, time, kind,
# JSON); per count: minute, kind, count; per heartbeat: worker, time, JSON.
_WRITE = """
local p = ARGV[1]
local max_events = tonumber(ARGV[2])
local oldest = tonumber(ARGV[3])
local max_age = tonumber(ARGV[4])
local n_events = tonumber(ARGV[5])
local n_tasks = tonumber(ARGV[6])
local n_counts = tonumber(ARGV[7])
local n_beats = tonumber(ARGV[8])
local max_drop = tonumber(ARGV[9])
local i = 10

local function index(id, state, name, worker, t)
  redis.call('ZADD', p .. ':tasks', t, id)
  redis.call('ZADD', p .. ':state:' .. state, t, id)
  redis.call('ZADD', p .. ':name:' .. name, t, id)
  redis.call('ZADD', p .. ':worker:' .. worker, t, id)
end

local function unindex(id, summary)
  local old = redis.call('HMGET', summary, 'state', 'name', 'worker')
  if old[1] then
    redis.call('ZREM', p .. ':tasks', id)
    redis.call('ZREM', p .. ':state:' .. old[1], id)
    redis.call('ZREM', p .. ':name:' .. old[2], id)
    redis.call('ZREM', p .. ':worker:' .. old[3], id)
  end
end

local base = redis.call('INCRBY', p .. ':sequence', n_events) - n_events
for _ = 1, n_tasks do
  local id, name, kind, worker, t, data, first, n =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6],
    tonumber(ARGV[i + 7])
  i = i + 8
  local members = {}
  for k = 1, n do
    local position, at, event_kind, event = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    i = i + 4
    local member = string.format('%016d', base + tonumber(position)) .. '|' .. event
    members[k] = member
    if event_kind == 'failed' then
      redis.call('ZADD', p .. ':failures', at, member)
    end
  end
  for j = 1, n, 500 do
    redis.call('RPUSH', p .. ':task:' .. id, unpack(members, j, math.min(j + 499, n)))
  end
  local summary = p .. ':summary:' .. id
  local known = redis.call('HMGET', summary, 'last', 'first')
  if (not known[1]) or tonumber(t) >= tonumber(known[1]) then
    unindex(id, summary)
    redis.call('HSET', summary, 'state', kind, 'name', name, 'worker', worker, 'last', t,
               'latest', data)
    index(id, kind, name, worker, t)
  end
  if (not known[2]) or tonumber(first) < tonumber(known[2]) then
    redis.call('HSET', summary, 'first', first)
  end
  redis.call('HINCRBY', summary, 'events', n)
end
redis.call('INCRBY', p .. ':count', n_events)

for _ = 1, n_counts do
  local minute, kind, count = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local minute_key = p .. ':minute:' .. minute
  redis.call('HINCRBY', minute_key, kind, count)
  redis.call('EXPIREAT', minute_key, math.ceil(tonumber(minute) + 60 + max_age))
end

for _ = 1, n_beats do
  local worker, t, data = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local seen = redis.call('ZSCORE', p .. ':workers:seen', worker)
  if (not seen) or tonumber(t) >= tonumber(seen) then
    redis.call('ZADD', p .. ':workers:seen', t, worker)
    redis.call('HSET', p .. ':workers', worker, data)
  end
end

local count = tonumber(redis.call('GET', p .. ':count') or '0')
local dropped = 0
while dropped < max_drop do
  local oldest_task = redis.call('ZRANGE', p .. ':tasks', 0, 0, 'WITHSCORES')
  if #oldest_task == 0 then break end
  if count <= max_events and tonumber(oldest_task[2]) >= oldest then break end
  local id = oldest_task[1]
  local summary = p .. ':summary:' .. id
  local events_key = p .. ':task:' .. id
  local members = redis.call('LRANGE', events_key, 0, -1)
  for j = 1, #members, 500 do
    redis.call('ZREM', p .. ':failures', unpack(members, j, math.min(j + 499, #members)))
  end
  count = count - #members
  unindex(id, summary)
  redis.call('DEL', summary, events_key)
  dropped = dropped + 1
end
redis.call('SET', p .. ':count', math.max(count, 0))

local gone = redis.call('ZRANGEBYSCORE', p .. ':workers:seen', '-inf', '(' .. ARGV[3])
for _, worker in ipairs(gone) do
  redis.call('HDEL', p .. ':workers', worker)
  redis.call('ZREM', p .. ':workers:seen', worker)
end
return dropped
"""


class RedisEventStore(AsyncEventStore):
    """Keeps events in Redis: one store for the workers and clients of many hosts.

    A batch costs one round trip (one script run); `taskq status` reads pre-computed indexes
    and per-minute counts, so its queries cost the same however many events are kept.

    Args:
        url: The Redis server (``redis://``, ``rediss://`` or ``unix://``).
        prefix: Every key of the store starts with ``<prefix>:``; stores with different
            prefixes share nothing.
        retention: The bounds on what is kept (default `Retention()`).
        **connection_kwargs: Passed to `taskq_redis.connection.RedisConnection`.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CROSS_PROCESS})

    def __init__(
        self,
        url: str = DEFAULT_URL,
        prefix: str = DEFAULT_PREFIX,
        retention: Retention | None = None,
        **connection_kwargs: Any,
    ) -> None:
        self.connection = RedisConnection(url, "RedisEventStore", **connection_kwargs)
        self.prefix = prefix
        self.retention = retention or Retention()
        self._write_script: Any = None

    async def startup(self) -> None:
        """Check that the server answers."""
        with self._translated("reach the event store"):
            await self.connection.client.ping()

    async def shutdown(self) -> None:
        """Close the connection pool."""
        await self.connection.close()

    async def write(
        self, events: Sequence[TaskEvent], heartbeats: Sequence[WorkerHeartbeat] = ()
    ) -> None:
        """Record the batch and apply the retention, in one script run."""
        tasks = _by_task(events)
        counts = Counter((minute_of(event.time), event.kind.value) for event in events)
        arguments: list[Any] = [
            self.prefix,
            self.retention.max_events,
            repr(time.time() - self.retention.max_age),
            repr(self.retention.max_age),
            len(events),
            len(tasks),
            len(counts),
            len(heartbeats),
            RETENTION_BATCH,
        ]
        for task_id, written in tasks.items():
            latest = max(written, key=lambda item: (item[1].time, item[0]))[1]
            arguments += [
                task_id,
                latest.task_name,
                latest.kind.value,
                str(latest.worker),
                repr(latest.time),
                _json(latest.as_dict()),
                repr(min(event.time for _, event in written)),
                len(written),
            ]
            for position, event in written:
                arguments += [position, repr(event.time), event.kind.value, _json(event.as_dict())]
        for (minute, kind), count in counts.items():
            arguments += [minute, kind, count]
        for beat in heartbeats:
            arguments += [str(beat.worker), repr(beat.time), _json(beat.as_dict())]
        if self._write_script is None:
            self._write_script = self.connection.client.register_script(_WRITE)
        with self._translated(f"record {len(events)} events"):
            await self._write_script(keys=[], args=arguments)

    async def task_events(self, task_id: str) -> list[TaskEvent]:
        """Every retained event of ``task_id``, by time, ties in write order."""
        with self._translated(f"read the events of task {task_id}"):
            found = await self.connection.client.lrange(self._key("task", task_id), 0, -1)
        members = cast("list[bytes]", found)
        written = [(_event(member), member[:_SEQUENCE_DIGITS]) for member in members]
        written.sort(key=lambda pair: (pair[0].time, pair[1]))
        return [event for event, _ in written]

    async def tasks(self, query: TaskQuery = LATEST_TASKS) -> TaskPage:
        """The matching tasks, latest first, one page of them."""
        key = self._index(query)
        top = "+inf" if query.until is None else f"({query.until!r}"
        after: tuple[float, str] | None = None
        if query.cursor is not None:
            after = read_cursor(query.cursor)
            if query.until is None or after[0] < query.until:
                top = repr(after[0])
        bottom = "-inf" if query.since is None else repr(query.since)
        found: list[TaskSummary] = []
        offset = 0
        client = self.connection.client
        with self._translated("read tasks"):
            while len(found) <= query.limit:
                chunk = cast(
                    "list[tuple[bytes, float]]",
                    await client.zrevrangebyscore(
                        key, top, bottom, start=offset, num=SCAN_CHUNK, withscores=True
                    ),
                )
                offset += len(chunk)
                ids = [
                    member.decode()
                    for member, score in chunk
                    if after is None or (score, member.decode()) < after
                ]
                found += [task for task in await self._summaries(ids) if query.matches(task)]
                if len(chunk) < SCAN_CHUNK:
                    break
        page = found[: query.limit]
        return TaskPage(page, page_cursor(page[-1]) if len(found) > query.limit else None)

    async def failures(self, limit: int = DEFAULT_FAILURES) -> list[TaskEvent]:
        """The latest ``failed`` events, newest first."""
        with self._translated("read the latest failures"):
            found = await self.connection.client.zrevrange(self._key("failures"), 0, limit - 1)
        members = cast("list[bytes]", found)
        return [_event(member) for member in members]

    async def rates(self, minutes: int, now: float | None = None) -> list[MinuteRate]:
        """Event counts per minute for the last ``minutes`` minutes, oldest first."""
        starts = last_minutes(minutes, time.time() if now is None else now)
        with self._translated("read the event rates"):
            async with self.connection.client.pipeline(transaction=False) as pipe:
                for start in starts:
                    pipe.hgetall(self._key("minute", str(start)))
                counts = await pipe.execute()
        return [
            MinuteRate(start, {EventKind(k.decode()): int(v) for k, v in found.items()})
            for start, found in zip(starts, counts, strict=True)
        ]

    async def workers(self, stale_after: float, now: float | None = None) -> list[WorkerStatus]:
        """Each retained worker's latest heartbeat, ordered by worker id."""
        moment = time.time() if now is None else now
        with self._translated("read the workers"):
            found = await self.connection.client.hvals(self._key("workers"))
        beats = sorted(
            (WorkerHeartbeat.from_dict(json.loads(data)) for data in found),
            key=lambda beat: beat.worker,
        )
        return [WorkerStatus(beat, moment - beat.time <= stale_after) for beat in beats]

    async def _summaries(self, ids: list[str]) -> list[TaskSummary]:
        """The summaries of ``ids`` (in that order), skipping tasks dropped meanwhile."""
        if not ids:
            return []
        async with self.connection.client.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hmget(self._key("summary", task_id), "latest", "first", "last")
            rows = await pipe.execute()
        summaries = []
        for latest, first, last in rows:
            if latest is not None:
                event = TaskEvent.from_dict(json.loads(latest))
                summaries.append(
                    TaskSummary(
                        task_id=event.task_id,
                        task_name=event.task_name,
                        state=event.kind,
                        worker=event.worker,
                        first_time=float(first),
                        last_time=float(last),
                        duration=event.duration,
                        error_type=event.error_type,
                        error_message=event.error_message,
                    )
                )
        return summaries

    def _index(self, query: TaskQuery) -> str:
        """The index `tasks` pages through: the narrowest one a filter names."""
        if query.state is not None:
            return self._key("state", query.state.value)
        if query.worker is not None:
            return self._key("worker", str(query.worker))
        if query.name is not None:
            return self._key("name", query.name)
        return self._key("tasks")

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _translated(self, action: str) -> AbstractContextManager[None]:
        return translated(
            action, self.connection.server, EventStoreUnavailableError, EventStoreError
        )


def from_url(url: str) -> RedisEventStore:
    """The store of ``redis://host:port/db?prefix=P&max_events=N&max_age=S`` (not started).

    ``prefix``, ``max_events`` and ``max_age`` are the store's; the rest of the URL goes to
    Redis. The entry point of the ``redis``, ``rediss`` and ``unix`` event store URLs.
    """
    parts = urlsplit(url)
    ours = ("prefix", "max_events", "max_age")
    query = parse_qsl(parts.query)
    redis_url = parts._replace(query=urlencode([(k, v) for k, v in query if k not in ours]))
    prefix = dict(query).get("prefix", DEFAULT_PREFIX)
    return RedisEventStore(redis_url.geturl(), prefix=prefix, retention=url_retention(url))


def _by_task(events: Sequence[TaskEvent]) -> dict[str, list[tuple[int, TaskEvent]]]:
    """The batch's events by task, each with its position in the batch (1 for the first)."""
    tasks: dict[str, list[tuple[int, TaskEvent]]] = {}
    for position, event in enumerate(events, start=1):
        tasks.setdefault(event.task_id, []).append((position, event))
    return tasks


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


#: Digits of the write sequence that starts each event member.
_SEQUENCE_DIGITS = 16


def _event(member: bytes) -> TaskEvent:
    """The event of a ``<sequence>|<JSON>`` member."""
    return TaskEvent.from_dict(json.loads(member.partition(b"|")[2]))
