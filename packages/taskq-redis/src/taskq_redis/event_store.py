"""`RedisEventStore`: task events and heartbeats in Redis, shared by the workers of many hosts.

Keys, all under the store's prefix ``P``:

- ``P:task``: a hash holding each task under its id: a header line (the time, kind, name and
  worker of its latest event, its event count and the sequences of its failures), then a line
  per batch that wrote to it: its events there as JSON, ``[[worker, row], ...]`` (each row an
  `EventRow`), in write order; reads sort the events by time, ties in that order. One hash for
  every task, read and written with one call per batch, costs Redis much less than a key or two
  per task;
- ``P:tasks`` and ``P:state:<kind>``, ``P:name:<name>``, ``P:worker:<id>``: sorted sets of
  task ids by the time of their latest event, the indexes that `tasks` pages through;
- ``P:failures``: a sorted set of the ``failed`` events' write sequences by time, and
  ``P:failed``: a hash of those events by sequence (as JSON, ``[worker, row]``);
- ``P:minute:<start>``: a hash of event counts by kind, expiring once older than the age bound;
- ``P:workers`` (a hash of heartbeats) and ``P:workers:seen`` (worker ids by time);
- ``P:sequence`` and ``P:count``: the write sequence and the number of events kept.

Each batch is one script run: the tasks, the indexes, the heartbeats, then the retention.
"""

from __future__ import annotations

import itertools
import json
import json.encoder
import time
from base64 import b64decode
from collections.abc import Callable, Iterable, Sequence
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
# time allowed, max age, events in the batch, tasks to drop at most; then as JSON: the tasks,
# each [id, and of its latest event in the batch: kind, name, worker, time; its event count,
# the [time, JSON, place in the batch] of its failed events; its name and worker as JSON], the
# [minute, kind, count] counts and the [worker, time, JSON] heartbeats; last, the tasks' lines
# of events (JSON has no raw newline), one a task, in the order of the tasks. Times are
# strings (Lua numbers print 14 digits). A task's header line: time, kind, name, worker, event
# count and failure sequences (space-separated), tab-separated (the name and worker as JSON:
# no tab in them). Per batch, the tasks are read with one HMGET and written with one HSET;
# each index changes with one call per key touched.
_WRITE = """
local p = ARGV[1]
local max_events = tonumber(ARGV[2])
local oldest = tonumber(ARGV[3])
local max_age = tonumber(ARGV[4])
local n_events = tonumber(ARGV[5])
local max_drop = tonumber(ARGV[6])
local tasks = cjson.decode(ARGV[7])
local counts = cjson.decode(ARGV[8])
local beats = cjson.decode(ARGV[9])
local next_line = string.gmatch(ARGV[10], '[^\\n]+')
local task_key = p .. ':task'
local tasks_key = p .. ':tasks'
local HEADER = '^([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\n]*)\\n'

local function push(groups, key, a, b)
  local group = groups[key]
  if not group then
    group = {}
    groups[key] = group
  end
  group[#group + 1] = a
  if b then group[#group + 1] = b end
end

-- Each distinct index key is made once per batch: most tasks of a batch share their keys.
local keys = {}
local function key_of(kind, value)
  local by_value = keys[kind]
  if not by_value then
    by_value = {}
    keys[kind] = by_value
  end
  local key = by_value[value]
  if not key then
    key = p .. kind .. value
    by_value[value] = key
  end
  return key
end

local function apply(command, groups)
  for key, values in pairs(groups) do
    for j = 1, #values, 1000 do
      redis.call(command, key, unpack(values, j, math.min(j + 999, #values)))
    end
  end
end

local ids = {}
for i, task in ipairs(tasks) do ids[i] = task[1] end
local known = {}
for j = 1, #ids, 1000 do
  local found = redis.call('HMGET', task_key, unpack(ids, j, math.min(j + 999, #ids)))
  for k = 1, #found do known[j + k - 1] = found[k] end
end

local sequence = redis.call('INCRBY', p .. ':sequence', n_events) - n_events
local added, removed, failures, failed, values = {}, {}, {}, {}, {}
for i, task in ipairs(tasks) do
  local id, kind, name, worker, t, n, failing, name_json, worker_json =
    task[1], task[2], task[3], task[4], task[5], task[6], task[7], task[8], task[9]
  local lines = next_line()
  local failure_seqs = ''
  local old, body = known[i], lines
  local latest = true
  if old then
    local last, old_kind, old_name, old_worker, events, seqs, rest =
      string.match(old, HEADER .. '()')
    n = n + tonumber(events)
    failure_seqs = seqs
    body = string.sub(old, rest) .. '\\n' .. lines
    if tonumber(t) < tonumber(last) then
      latest = false
      t, kind, name_json, worker_json = last, old_kind, old_name, old_worker
    else
      if old_kind ~= kind then push(removed, key_of(':state:', old_kind), id) end
      if old_name ~= name_json then
        push(removed, key_of(':name:', cjson.decode(old_name)), id)
      end
      if old_worker ~= worker_json then
        push(removed, key_of(':worker:', cjson.decode(old_worker)), id)
      end
    end
  end
  if #failing > 0 then
    for _, failure in ipairs(failing) do
      local member = string.format('%016d', sequence + failure[3])
      push(failures, p .. ':failures', failure[1], member)
      push(failed, p .. ':failed', member, failure[2])
      failure_seqs = failure_seqs == '' and member or (failure_seqs .. ' ' .. member)
    end
  end
  if latest then
    push(added, tasks_key, t, id)
    push(added, key_of(':state:', kind), t, id)
    push(added, key_of(':name:', name), t, id)
    push(added, key_of(':worker:', worker), t, id)
  end
  values[#values + 1] = id
  values[#values + 1] = t .. '\\t' .. kind .. '\\t' .. name_json .. '\\t' .. worker_json .. '\\t'
    .. n .. '\\t' .. failure_seqs .. '\\n' .. body
end
for j = 1, #values, 1000 do
  redis.call('HSET', task_key, unpack(values, j, math.min(j + 999, #values)))
end
apply('ZREM', removed)
apply('ZADD', added)
apply('ZADD', failures)
apply('HSET', failed)
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
  local value = redis.call('HGET', task_key, id)
  redis.call('ZREM', p .. ':tasks', id)
  if value then
    local _, kind, name, worker, events, seqs = string.match(value, HEADER)
    redis.call('ZREM', p .. ':state:' .. kind, id)
    redis.call('ZREM', p .. ':name:' .. cjson.decode(name), id)
    redis.call('ZREM', p .. ':worker:' .. cjson.decode(worker), id)
    for member in string.gmatch(seqs, '%d+') do
      redis.call('ZREM', p .. ':failures', member)
      redis.call('HDEL', p .. ':failed', member)
    end
    redis.call('HDEL', task_key, id)
    count = count - tonumber(events)
  end
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
        tasks, lines, counts, written = _by_task(batch)
        arguments: list[Any] = [
            self.prefix,
            self.retention.max_events,
            repr(time.time() - self.retention.max_age),
            repr(self.retention.max_age),
            written,
            RETENTION_BATCH,
            _json(tasks),
            _json([[m, kind, n] for m, by_kind in counts.items() for kind, n in by_kind.items()]),
            _json([[str(b.worker), repr(b.time), _json(b.as_dict())] for b in heartbeats]),
            lines,
        ]
        if self._write_script is None:
            self._write_script = self.connection.client.register_script(_WRITE)
        with self._translated(f"record {written} events"):
            await self._write_script(keys=[], args=arguments)

    async def task_events(self, task_id: str) -> list[TaskEvent]:
        """Every retained event of ``task_id``, by time, ties in write order."""
        with self._translated(f"read the events of task {task_id}"):
            found = await self.connection.client.hget(self._key("task"), task_id)
        return [] if found is None else _events(cast("bytes", found))

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
        client = self.connection.client
        with self._translated("read the latest failures"):
            members = cast(
                "list[bytes]", await client.zrevrange(self._key("failures"), 0, limit - 1)
            )
            found = await client.hmget(self._key("failed"), members) if members else []
        workers: dict[str, WorkerId] = {}
        return [_event(workers, *json.loads(data)) for data in found if data is not None]

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
        found = cast(
            "list[bytes | None]", await self.connection.client.hmget(self._key("task"), ids)
        )
        return [TaskSummary.of(_events(value)) for value in found if value is not None]

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


def _by_task(
    batch: Iterable[tuple[str, EventRow]],
) -> tuple[list[list[Any]], str, dict[int, dict[str, int]], int]:
    """The batch's tasks as the write script takes them, their lines, the counts, the total.

    A task's events in the batch become one line of JSON, ``[[worker, row], ...]``, in one call
    of the C encoder: writing each event out in Python would cost more than the rest. The lines
    go apart from the tasks' JSON, so that the script does not decode them. The counts are by
    minute and kind.
    """
    tasks: dict[str, list[Any]] = {}
    counts: dict[int, dict[str, int]] = {}
    per_kind: dict[str, int] = {}
    minute = -1
    place = 0
    for pair in batch:
        kind, task_id, _, at, _ = pair[1]
        place += 1
        task = tasks.get(task_id)
        if task is None:  # its [worker, row] pairs, the latest pair, its failures
            task = tasks[task_id] = [[pair], pair, []]
        else:
            task[0].append(pair)
            if at >= task[1][1][3]:
                task[1] = pair
        if kind == "failed":
            task[2].append([repr(at), _json(pair), place])
        if not minute <= at < minute + 60:
            minute = minute_of(at)
            per_kind = counts.setdefault(minute, {})
        per_kind[kind] = per_kind.get(kind, 0) + 1
    quoted: dict[str, str] = {}
    found = []
    lines = []
    for task_id, (pairs, (worker, (kind, _, name, at, _)), failed) in tasks.items():
        lines.append(_json(pairs))
        found.append(
            [
                task_id,
                kind,
                name,
                worker,
                repr(at),
                len(pairs),
                failed,
                _quote(quoted, name),
                _quote(quoted, worker),
            ]
        )
    return found, "\n".join(lines), counts, place


def _quote(quoted: dict[str, str], text: str) -> str:
    """``text`` as JSON, made once per batch."""
    found = quoted.get(text)
    if found is None:
        found = quoted[text] = _json(text)
    return found


def _events(value: bytes) -> list[TaskEvent]:
    """A task's events from its value in ``P:task``, by time, ties in write order."""
    workers: dict[str, WorkerId] = {}
    events = []
    for line in value.split(b"\n")[1:]:
        events += [_event(workers, worker, row) for worker, row in json.loads(line)]
    events.sort(key=lambda event: event.time)  # stable: ties stay in write order
    return events


def _event(workers: dict[str, WorkerId], worker: str, row: Any) -> TaskEvent:
    """The event of a stored ``[worker, row]`` pair (``workers``: the ids parsed so far)."""
    found = workers.get(worker)
    if found is None:
        found = workers[worker] = WorkerId.parse(worker)
    try:
        return TaskEvent.from_row(found, _stored_row(row))
    except (TypeError, ValueError) as error:
        raise EventStoreError(f"not a stored task event: {row!r} ({error})") from None


def _bytes_text(value: Any) -> str:
    """A ``sent`` event's message bytes as base64 text, for the encoder; nothing else."""
    if isinstance(value, bytes):
        return message_text(value)
    raise TypeError(f"{type(value).__name__} is not an event field's type")


def _encoder() -> Callable[[Any], str]:
    """One JSON encoder for every write, compact, message bytes as base64 text.

    ``JSONEncoder.encode`` makes a new C encoder at each call, which costs as much as encoding
    a task's line of events: the C encoder is made once here (the standard library's own, as
    ``encode`` would make it; ``encode`` itself where there is none). Rows hold no cycles: the
    check for them would cost a sixth of the encoding.
    """
    encoder = json.JSONEncoder(separators=(",", ":"), default=_bytes_text, check_circular=False)
    make = getattr(json.encoder, "c_make_encoder", None)  # private: not in the typed stubs
    if make is None:
        return encoder.encode
    iterencode = make(
        None, _bytes_text, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )
    quote = json.encoder.encode_basestring_ascii

    def encode(value: Any) -> str:
        if isinstance(value, str):  # quoted directly, as ``encode`` does
            return quote(value)
        return "".join(iterencode(value, 0))

    return encode


def _orjson_encoder(standard: Callable[[Any], str]) -> Callable[[Any], str] | None:
    """The orjson encoder where orjson is installed (else None), ``standard`` for the rest.

    It encodes a batch's events several times faster than the standard library: a worker's
    events cost it about half as much. Its JSON reads back the same (non-ASCII text is written
    as UTF-8 rather than escaped); NaN and infinities, which JSON cannot hold, become null. A
    string and what orjson refuses (an integer past 64 bits) go to ``standard``.
    """
    try:
        import orjson
    except ImportError:
        return None
    dumps, refused = orjson.dumps, orjson.JSONEncodeError

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return standard(value)
        try:
            return dumps(value, default=_bytes_text).decode()
        except refused:
            return standard(value)

    return encode


_standard_json = _encoder()
#: The encoder of every write: orjson's where installed, else the standard library's.
_json = _orjson_encoder(_standard_json) or _standard_json


def _stored_row(row: Any) -> Any:
    """A row as written, from its JSON: a ``sent`` event's message back to bytes."""
    details = row[4]
    if any(key == "message" for key, _ in details):
        row[4] = [
            (key, b64decode(value, validate=True) if key == "message" else value)
            for key, value in details
        ]
    return row
