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

import itertools
import json
import time
from collections.abc import Iterable, Sequence
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
    EventRow,
    MinuteRate,
    Retention,
    TaskEvent,
    TaskPage,
    TaskQuery,
    TaskSummary,
    WorkerHeartbeat,
    WorkerId,
    WorkerStatus,
    last_minutes,
    message_text,
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
# time allowed, max age, events in the batch, tasks to drop at most; then as JSON: the tasks, each
# [id, and of its latest event in the batch: name, kind, worker, time; its earliest time, the
# latest event's place among the task's events (1 for the first), its event count n, the
# [place, time] of its failed events]; the events' JSON, one a line, task by task in the
# order of the tasks, each task's in write order; as JSON, the [minute, kind, count] counts and
# the [worker, time, JSON] heartbeats. Times are strings (Lua numbers print 14 digits).
# The indexes change with a few calls per batch (one ZADD or ZREM per key touched), not per task.
_WRITE = """
local p = ARGV[1]
local max_events = tonumber(ARGV[2])
local oldest = tonumber(ARGV[3])
local max_age = tonumber(ARGV[4])
local n_events = tonumber(ARGV[5])
local max_drop = tonumber(ARGV[6])
local tasks = cjson.decode(ARGV[7])
local next_event = string.gmatch(ARGV[8], '[^\\n]+')
local counts = cjson.decode(ARGV[9])
local beats = cjson.decode(ARGV[10])

local function add(groups, key, ...)
  local group = groups[key]
  if not group then
    group = {}
    groups[key] = group
  end
  for _, value in ipairs({...}) do
    group[#group + 1] = value
  end
end

local function apply(command, groups)
  for key, values in pairs(groups) do
    for j = 1, #values, 1000 do
      redis.call(command, key, unpack(values, j, math.min(j + 999, #values)))
    end
  end
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

local sequence = redis.call('INCRBY', p .. ':sequence', n_events) - n_events
local added, removed, failures = {}, {}, {}
for _, task in ipairs(tasks) do
  local id, name, kind, worker, t, first, latest_place, n, failed =
    task[1], task[2], task[3], task[4], task[5], task[6], task[7], task[8], task[9]
  local members, latest = {}, nil
  for k = 1, n do
    local event = next_event()
    sequence = sequence + 1
    members[k] = string.format('%016d', sequence) .. '|' .. event
    if k == latest_place then latest = event end
  end
  for _, place_time in ipairs(failed) do
    add(failures, p .. ':failures', place_time[2], members[place_time[1]])
  end
  for j = 1, n, 500 do
    redis.call('RPUSH', p .. ':task:' .. id, unpack(members, j, math.min(j + 499, n)))
  end
  local summary = p .. ':summary:' .. id
  local known = redis.call('HMGET', summary, 'last', 'first', 'events', 'state', 'name', 'worker')
  if known[2] and tonumber(known[2]) < tonumber(first) then first = known[2] end
  local events = n + tonumber(known[3] or '0')
  if (not known[1]) or tonumber(t) >= tonumber(known[1]) then
    redis.call('HSET', summary, 'state', kind, 'name', name, 'worker', worker, 'last', t,
               'latest', latest, 'first', first, 'events', events)
    add(added, p .. ':tasks', t, id)
    add(added, p .. ':state:' .. kind, t, id)
    add(added, p .. ':name:' .. name, t, id)
    add(added, p .. ':worker:' .. worker, t, id)
    if known[4] and known[4] ~= kind then add(removed, p .. ':state:' .. known[4], id) end
    if known[5] and known[5] ~= name then add(removed, p .. ':name:' .. known[5], id) end
    if known[6] and known[6] ~= worker then add(removed, p .. ':worker:' .. known[6], id) end
  else
    redis.call('HSET', summary, 'first', first, 'events', events)
  end
end
apply('ZREM', removed)
apply('ZADD', added)
apply('ZADD', failures)
redis.call('INCRBY', p .. ':count', n_events)

for _, count in ipairs(counts) do
  local minute_key = p .. ':minute:' .. count[1]
  redis.call('HINCRBY', minute_key, count[2], count[3])
  redis.call('EXPIREAT', minute_key, math.ceil(tonumber(count[1]) + 60 + max_age))
end

for _, beat in ipairs(beats) do
  local worker, t, data = beat[1], beat[2], beat[3]
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
        await self._write([(str(event.worker), event.as_row()) for event in events], heartbeats)

    async def write_rows(
        self,
        worker: WorkerId,
        rows: Sequence[EventRow],
        heartbeats: Sequence[WorkerHeartbeat] = (),
    ) -> None:
        """Record the rows and apply the retention, in one script run (no `TaskEvent` made)."""
        await self._write(zip(itertools.repeat(str(worker)), rows), heartbeats)

    async def _write(
        self, batch: Iterable[tuple[str, EventRow]], heartbeats: Sequence[WorkerHeartbeat]
    ) -> None:
        tasks, counts, written = _by_task(batch)
        headers: list[list[Any]] = []
        lines: list[str] = []
        for task_id, task in tasks.items():
            headers.append(_header(task_id, task))
            lines += [item[4] for item in task]
        arguments: list[Any] = [
            self.prefix,
            self.retention.max_events,
            repr(time.time() - self.retention.max_age),
            repr(self.retention.max_age),
            written,
            RETENTION_BATCH,
            _json(headers),
            "\n".join(lines),
            _json([[minute, kind, count] for (minute, kind), count in counts.items()]),
            _json([[str(b.worker), repr(b.time), _json(b.as_dict())] for b in heartbeats]),
        ]
        if self._write_script is None:
            self._write_script = self.connection.client.register_script(_WRITE)
        with self._translated(f"record {written} events"):
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


#: A batch's event as `_by_task` groups it: time, kind, task name, worker id, JSON.
_Written = tuple[float, str, str, str, str]


def _by_task(
    batch: Iterable[tuple[str, EventRow]],
) -> tuple[dict[str, list[_Written]], dict[tuple[int, str], int], int]:
    """The batch's events by task in write order, the counts by (minute, kind), the total.

    Each event's JSON is written out here (the part its kind, name and worker share made once
    per batch): a dictionary and a general encoding per event cost more than the rest.
    """
    tasks: dict[str, list[_Written]] = {}
    counts: dict[tuple[int, str], int] = {}
    heads: dict[tuple[str, str, str], str] = {}
    written = 0
    for worker, (kind, task_id, task_name, at, details) in batch:
        head = heads.get((kind, task_name, worker))
        if head is None:
            head = heads[kind, task_name, worker] = (
                f'{{"kind":{_json(kind)},"task_name":{_json(task_name)},"worker":{_json(worker)},'
            )
        data = f'{head}"task_id":{_json(task_id)},"time":{at!r}'
        for key, value in details:
            if value is not None:
                data += f",{_json(key)}:{_detail_json(value)}"
        task = tasks.get(task_id)
        if task is None:
            task = tasks[task_id] = []
        task.append((at, kind, task_name, worker, data + "}"))
        minute_kind = (minute_of(at), kind)
        counts[minute_kind] = counts.get(minute_kind, 0) + 1
        written += 1
    return tasks, counts, written


def _header(task_id: str, task: list[_Written]) -> list[Any]:
    """What the write script needs of a task besides its events' JSON (see `_WRITE`)."""
    latest = 0
    for place in range(1, len(task)):
        if task[place][0] >= task[latest][0]:
            latest = place
    at, kind, task_name, worker, _ = task[latest]
    first = min(item[0] for item in task)
    failed = [
        [place, repr(item[0])]
        for place, item in enumerate(task, start=1)
        if item[1] == EventKind.FAILED.value
    ]
    return [task_id, task_name, kind, worker, repr(at), repr(first), latest + 1, len(task), failed]


#: One encoder for every write (``json.dumps`` with options makes one per call); a string is
#: quoted directly.
_json = json.JSONEncoder(separators=(",", ":")).encode


def _detail_json(value: Any) -> str:
    """The JSON of an event field's value (a number's repr is its JSON; bytes go as base64)."""
    if isinstance(value, str):
        return _json(value)
    if isinstance(value, bytes):
        return f'"{message_text(value)}"'
    return repr(value)


#: Digits of the write sequence that starts each event member.
_SEQUENCE_DIGITS = 16


def _event(member: bytes) -> TaskEvent:
    """The event of a ``<sequence>|<JSON>`` member."""
    return TaskEvent.from_dict(json.loads(member.partition(b"|")[2]))
