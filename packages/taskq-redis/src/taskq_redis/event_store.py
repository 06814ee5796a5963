"""`RedisEventStore`: task events and heartbeats in Redis, shared by the workers of many hosts.

Keys, all under the store's prefix ``P``:

- ``P:task``: a hash holding each task under its id: a header line (the time, kind, name and
  worker of its latest event, its event count and the sequences of its failures), then a line
  per batch that wrote to it: its events there as JSON, ``[worker, name, event, ...]``, each
  event ``[kind, time]`` or ``[kind, time, details]`` (an `EventRow`'s other fields as pairs),
  or ``[kind, time, details, name, worker]`` when not the line's (the task id, the worker and
  the name are not repeated for every event), in write order; reads sort the events by time,
  ties in that order (and still read lines of ``[[worker, row], ...]``, as written before).
  One hash for every task, read and written with one call per batch, costs Redis much less
  than a key or two per task;
- ``P:state:<kind>``, ``P:name:<name>``, ``P:worker:<id>``: sorted sets of task ids by the
  time of their latest event, the indexes that `tasks` pages through (each task is in the
  index of its latest event's kind, so the state indexes together hold every task: a query
  with no filter merges them, and the retention finds the oldest tasks at their heads);
- ``P:failures``: a sorted set of the ``failed`` events' write sequences by time, and
  ``P:failed``: a hash of those events by sequence (as JSON, ``[worker, row]``);
- ``P:minute:<start>``: a hash of event counts by kind, expiring once older than the age bound;
- ``P:workers`` (a hash of heartbeats) and ``P:workers:seen`` (worker ids by time);
- ``P:sequence`` and ``P:count``: the write sequence and the number of events kept.

Each batch is one script run: the tasks, the indexes, the heartbeats, then the retention. The
client makes each task's value as if it were new, so that the script rebuilds only the tasks
the hash already holds (and those with a failure). The store used to keep a fifth index, of
every task, ``P:tasks``: each write deletes it if it is there (``UNLINK``: the server frees it
without pausing), and reads no longer use it; the rest of the data reads as before.
"""

from __future__ import annotations

import json
import json.encoder
import time
from base64 import b64decode
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from operator import itemgetter
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
    bounded_heartbeats,
    bounded_rows,
    check_times,
    last_minutes,
    message_text,
    minute_of,
    page_cursor,
    read_cursor,
    reading,
    stored_task_id,
    stored_worker,
)
from taskq.toolkit import check_seconds
from taskq_redis.connection import DEFAULT_URL, RedisConnection
from taskq_redis.errors import EventStoreUnavailableError, translated

#: The workers of a batch's rows: one for all of them, or one a row.
Workers = str | Sequence[str]
_kind_of, _time_of = itemgetter(0), itemgetter(3)

#: Default key prefix.
DEFAULT_PREFIX = "taskq:events"
#: The longest ``max_age`` of a retention (about 285 million years): the per-minute counts
#: expire ``max_age`` after their minute, and Redis refuses an expiry past 2**63 - 1
#: milliseconds since 1970 (9.22e15 s).
MAX_AGE_S = 9e15
#: Tasks one write drops at most; a larger backlog (a lowered bound) goes over the next writes.
RETENTION_BATCH = 1000
#: Candidate tasks `RedisEventStore.tasks` reads from an index at a time.
SCAN_CHUNK = 200
#: Tasks the retention reads from a state index at a time, once it has tasks to drop.
RETENTION_CHUNK = 100
#: The state indexes' key suffixes, in the order the retention reads them.
STATE_SUFFIXES = tuple(f":state:{kind.value}" for kind in EventKind)
# KEYS: none (every key derives from the prefix, ARGV[1]). ARGV: prefix, max events, oldest
# time allowed, max age, events in the batch, tasks to drop at most; then as JSON: the
# [minute, kind, count] counts, the [worker, time, JSON] heartbeats, the failed events ([the
# task's place in the batch, time, JSON, the event's place in the batch]), the tasks' [time,
# id, time, id...] (the time of each one's latest event in the batch) and the index keys
# ([key suffix, task places...], no place: every task); last, the tasks' values as if each
# task were new (its header with no failure, a newline, its line of events), one argument
# each, in the order of the tasks. A task the hash already holds (or with a failure)
# has its value rebuilt here: its lines, then the new one; the header of its latest event;
# its failures' sequences. Per batch: one HMGET and one HSET of the tasks (a second HSET for
# the rebuilt ones) and one ZADD per index key. The client packs each argument in Python,
# so the small ones go as a few JSON arguments, which the script decodes in C; each value is
# an argument of its own, so that Lua copies (and hashes) its bytes once. Times are strings
# (Lua numbers print 14 digits). A task's header line: time, kind, name, worker, event count
# and failure sequences (space-separated), tab-separated (the name and worker as JSON: no tab
# in them).
_STATE_KEYS = ", ".join(f"'{suffix}'" for suffix in STATE_SUFFIXES)
_WRITE = (
    f"local STATE_KEYS = {{{_STATE_KEYS}}}\nlocal CHUNK = {RETENTION_CHUNK}\n"
    + """
local p = ARGV[1]
local max_events = tonumber(ARGV[2])
local oldest = tonumber(ARGV[3])
local max_age = tonumber(ARGV[4])
local n_events = tonumber(ARGV[5])
local max_drop = tonumber(ARGV[6])
local counts = cjson.decode(ARGV[7])
local beats = cjson.decode(ARGV[8])
local failing = cjson.decode(ARGV[9])
local entries = cjson.decode(ARGV[10])
local indexes = cjson.decode(ARGV[11])
local n_tasks = #entries / 2
local task_key = p .. ':task'
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

local function call_chunked(command, key, values, first, last)
  for j = first, last, 1000 do
    redis.call(command, key, unpack(values, j, math.min(j + 999, last)))
  end
end

local function apply(command, groups)
  for key, values in pairs(groups) do call_chunked(command, key, values, 1, #values) end
end

-- The tasks' ids, and their values as [id, value, ...] for HSET (the values are the last
-- arguments, one a task: taken as they are, not cut out of a larger string, which would copy
-- and hash each value's bytes once more).
local ids, values = {}, {}
for i = 1, n_tasks do
  local id = entries[2 * i]
  ids[i] = id
  values[2 * i - 1] = id
  values[2 * i] = ARGV[11 + i]
end
local known = {}
for j = 1, n_tasks, 1000 do
  local found = redis.call('HMGET', task_key, unpack(ids, j, math.min(j + 999, n_tasks)))
  for k = 1, #found do known[j + k - 1] = found[k] end
end

local sequence = redis.call('INCRBY', p .. ':sequence', n_events) - n_events
local failures, failed, failure_seqs = {}, {}, {}
for _, failure in ipairs(failing) do
  local member = string.format('%016d', sequence + failure[4])
  push(failures, p .. ':failures', failure[2], member)
  push(failed, p .. ':failed', member, failure[3])
  local seqs = failure_seqs[failure[1]]
  failure_seqs[failure[1]] = seqs and (seqs .. ' ' .. member) or member
end

-- Known tasks (and failed ones): the value rebuilt; `late` holds the known tasks whose
-- stored latest event is later than the batch's, whose indexes are set back below.
local rebuilt, removed, late = {}, {}, {}
for i = 1, n_tasks do
  local old, seqs = known[i], failure_seqs[i]
  if old or seqs then
    local id, value = ids[i], values[2 * i]
    local t, kind, name, worker, n, _, at = string.match(value, HEADER .. '()')
    local body = string.sub(value, at)
    seqs = seqs or ''
    if old then
      local last, old_kind, old_name, old_worker, events, old_seqs, rest =
        string.match(old, HEADER .. '()')
      n = n + tonumber(events)
      if old_seqs ~= '' then seqs = seqs == '' and old_seqs or (old_seqs .. ' ' .. seqs) end
      body = string.sub(old, rest) .. '\\n' .. body
      if tonumber(t) < tonumber(last) then
        late[#late + 1] = {id, last, old_kind, old_name, old_worker, kind, name, worker}
        t, kind, name, worker = last, old_kind, old_name, old_worker
      else
        if old_kind ~= kind then push(removed, p .. ':state:' .. old_kind, id) end
        if old_name ~= name then
          push(removed, p .. ':name:' .. cjson.decode(old_name), id)
        end
        if old_worker ~= worker then
          push(removed, p .. ':worker:' .. cjson.decode(old_worker), id)
        end
      end
    end
    rebuilt[#rebuilt + 1] = id
    rebuilt[#rebuilt + 1] = t .. '\\t' .. kind .. '\\t' .. name .. '\\t' .. worker .. '\\t' .. n
      .. '\\t' .. seqs .. '\\n' .. body
  end
end
call_chunked('HSET', task_key, values, 1, #values)
call_chunked('HSET', task_key, rebuilt, 1, #rebuilt)
apply('ZREM', removed)
for _, index in ipairs(indexes) do
  if #index == 1 then
    call_chunked('ZADD', p .. index[1], entries, 1, #entries)
  else
    local some = {}
    for k = 2, #index do
      local place = index[k]
      some[#some + 1] = entries[2 * place - 1]
      some[#some + 1] = entries[2 * place]
    end
    call_chunked('ZADD', p .. index[1], some, 1, #some)
  end
end
-- A late batch does not move its task in the indexes: back to where its latest event put it.
for _, task in ipairs(late) do
  local id, last = task[1], task[2]
  local before = {':state:' .. task[3], ':name:' .. cjson.decode(task[4]),
    ':worker:' .. cjson.decode(task[5])}
  local batch = {':state:' .. task[6], ':name:' .. cjson.decode(task[7]),
    ':worker:' .. cjson.decode(task[8])}
  for k = 1, 3 do
    if batch[k] ~= before[k] then redis.call('ZREM', p .. batch[k], id) end
    redis.call('ZADD', p .. before[k], last, id)
  end
end
apply('ZADD', failures)
apply('HSET', failed)
local count = redis.call('INCRBY', p .. ':count', n_events)

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

-- Retention: the oldest tasks first, merged from the heads of the state indexes (peeked at
-- one task each; read on by `RETENTION_CHUNK` once one is found to go). Each index, the hash
-- and the failures lose their dropped tasks with one command each.
local states, lists, at, taken, ended = STATE_KEYS, {}, {}, {}, {}
local function fill(k, n)
  lists[k] = redis.call('ZRANGE', p .. states[k], taken[k], taken[k] + n - 1, 'WITHSCORES')
  at[k] = 1
  ended[k] = #lists[k] < 2 * n
end
for k = 1, #states do
  taken[k] = 0
  fill(k, 1)
end
local dropped, gone, gone_ids, gone_failed, seen = 0, {}, {}, {}, {}
while dropped < max_drop do
  local best, best_id, best_t
  for k = 1, #states do
    if not lists[k][at[k]] and not ended[k] then fill(k, CHUNK) end
    local id = lists[k][at[k]]
    if id then
      local t = tonumber(lists[k][at[k] + 1])
      if not best or t < best_t or (t == best_t and id < best_id) then
        best, best_id, best_t = k, id, t
      end
    end
  end
  if not best then break end
  if count <= max_events and best_t >= oldest then break end
  at[best] = at[best] + 2
  taken[best] = taken[best] + 1
  push(gone, p .. states[best], best_id)
  local value = not seen[best_id] and redis.call('HGET', task_key, best_id)
  seen[best_id] = true
  if value then
    local _, kind, name, worker, events, seqs = string.match(value, HEADER)
    if ':state:' .. kind ~= states[best] then push(gone, p .. ':state:' .. kind, best_id) end
    push(gone, p .. ':name:' .. cjson.decode(name), best_id)
    push(gone, p .. ':worker:' .. cjson.decode(worker), best_id)
    for member in string.gmatch(seqs, '%d+') do
      push(gone, p .. ':failures', member)
      gone_failed[#gone_failed + 1] = member
    end
    gone_ids[#gone_ids + 1] = best_id
    count = count - tonumber(events)
  end
  dropped = dropped + 1
end
apply('ZREM', gone)
call_chunked('HDEL', task_key, gone_ids, 1, #gone_ids)
call_chunked('HDEL', p .. ':failed', gone_failed, 1, #gone_failed)
redis.call('UNLINK', p .. ':tasks')  -- the index of every task that older versions kept
redis.call('SET', p .. ':count', math.max(count, 0))

local gone = redis.call('ZRANGEBYSCORE', p .. ':workers:seen', '-inf', '(' .. ARGV[3])
for _, worker in ipairs(gone) do
  redis.call('HDEL', p .. ':workers', worker)
  redis.call('ZREM', p .. ':workers:seen', worker)
end
return dropped
"""
)

# KEYS: the failures' sorted set, the hash of the failed events. ARGV: how many, at most.
# The latest failed events, newest first (those dropped meanwhile left out), read in one round
# trip rather than two (the sequences, then the events); HMGET a chunk at a time, as Lua's
# unpack takes a few thousand values at most.
_LATEST_FAILURES = """
local sequences = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local found = {}
for first = 1, #sequences, 1000 do
  local last = math.min(first + 999, #sequences)
  for _, event in ipairs(redis.call('HMGET', KEYS[2], unpack(sequences, first, last))) do
    if event then found[#found + 1] = event end
  end
end
return found
"""


class RedisEventStore(AsyncEventStore):
    """Keeps events in Redis: one store for the workers and clients of many hosts.

    A batch costs one round trip (one script run); `taskq status` reads pre-computed indexes
    and per-minute counts, so its queries cost the same however many events are kept.

    Args:
        url: The Redis server (``redis://``, ``rediss://`` or ``unix://``).
        prefix: Every key of the store starts with ``<prefix>:``; stores with different
            prefixes share nothing.
        retention: The bounds on what is kept (default `Retention()`); its ``max_age`` at
            most `MAX_AGE_S` (about 285 million years).
        **connection_kwargs: Passed to `taskq_redis.connection.RedisConnection`.

    Raises:
        EventStoreError: The retention's ``max_age`` is above `MAX_AGE_S`.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CROSS_PROCESS})

    def __init__(
        self,
        url: str = DEFAULT_URL,
        prefix: str = DEFAULT_PREFIX,
        retention: Retention | None = None,
        **connection_kwargs: Any,
    ) -> None:
        retention = retention or Retention()
        try:
            check_seconds("max_age", retention.max_age, maximum=MAX_AGE_S)
        except ValueError as exc:  # worded as `Retention` words its own checks
            raise EventStoreError(f"retention: {exc}") from None
        self.connection = RedisConnection(url, "RedisEventStore", **connection_kwargs)
        self.prefix = prefix
        self.retention = retention
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
        rows = [event.as_row() for event in events]
        workers = [str(stored_worker(event.worker)) for event in events]
        await self._write(rows, workers, heartbeats)

    async def write_rows(
        self,
        worker: WorkerId,
        rows: Sequence[EventRow],
        heartbeats: Sequence[WorkerHeartbeat] = (),
    ) -> None:
        """Record the rows and apply the retention, in one script run (no `TaskEvent` made)."""
        await self._write(rows, str(stored_worker(worker)), heartbeats)

    async def _write(
        self,
        rows: Sequence[EventRow],
        workers: Workers,
        heartbeats: Sequence[WorkerHeartbeat],
    ) -> None:
        check_times(map(_time_of, rows), heartbeats)
        arguments = self._arguments(bounded_rows(rows), workers, bounded_heartbeats(heartbeats))
        if self._write_script is None:
            self._write_script = self.connection.client.register_script(_WRITE)
        with self._translated(_recording(len(rows), len(heartbeats))):
            await self._write_script(keys=[], args=arguments)

    def _arguments(
        self, rows: Sequence[EventRow], workers: Workers, heartbeats: Sequence[WorkerHeartbeat]
    ) -> list[Any]:
        """The write script's arguments (strings and numbers only).

        The batch's lists and tuples are freed here, before the write waits for Redis: kept
        over the wait, the garbage collector would move them to its oldest generation while
        the worker runs on, and full collections, which cost a few milliseconds in a worker,
        would come more often.
        """
        batch = _Batch(rows, workers)
        counts = batch.counts
        return [
            self.prefix,
            self.retention.max_events,
            repr(time.time() - self.retention.max_age),
            repr(self.retention.max_age),
            len(rows),
            RETENTION_BATCH,
            _json([[m, kind, n] for m, by_kind in counts.items() for kind, n in by_kind.items()]),
            _json([[str(b.worker), repr(b.time), _json(b.as_dict())] for b in heartbeats]),
            _json(batch.failures),
            *batch.script_arguments(),
        ]

    async def task_events(self, task_id: str) -> list[TaskEvent]:
        """Every retained event of ``task_id`` (its whole id or the one kept), by time."""
        kept = stored_task_id(task_id)
        with self._translated(f"read the events of task {kept}"):
            found = await self.connection.client.hget(self._key("task"), kept)
        return [] if found is None else _events(kept, cast("bytes", found))

    async def tasks(self, query: TaskQuery = LATEST_TASKS) -> TaskPage:
        """The matching tasks, latest first, one page of them."""
        top = "+inf" if query.until is None else f"({query.until!r}"
        after: tuple[float, str] | None = None
        if query.cursor is not None:
            after = read_cursor(query.cursor)
            if query.until is None or after[0] < query.until:
                top = repr(after[0])
        bottom = "-inf" if query.since is None else repr(query.since)
        key = self._index(query)
        with self._translated("read tasks"):
            if key is None:
                found = await self._latest(top, bottom, after, query)
            else:
                found = await self._scan(key, top, bottom, after, query)
        page = found[: query.limit]
        return TaskPage(page, page_cursor(page[-1]) if len(found) > query.limit else None)

    async def _scan(
        self, key: str, top: str, bottom: str, after: tuple[float, str] | None, query: TaskQuery
    ) -> list[TaskSummary]:
        """Up to ``query.limit + 1`` matching tasks of one index, latest first."""
        found: list[TaskSummary] = []
        offset = 0
        client = self.connection.client
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
        return found

    async def _latest(
        self, top: str, bottom: str, after: tuple[float, str] | None, query: TaskQuery
    ) -> list[TaskSummary]:
        """Up to ``query.limit + 1`` tasks of every state, latest first (no filter names one).

        Each task is in one state index: the first ``limit + 1`` of each, merged, hold the
        page's. The indexes are read together, one round trip (another for an index whose
        first tasks are ties the cursor has passed).
        """
        want = query.limit + 1
        keys = [self.prefix + suffix for suffix in STATE_SUFFIXES]
        offsets = dict.fromkeys(keys, 0)
        kept = dict.fromkeys(keys, 0)
        candidates: list[tuple[float, str]] = []
        client = self.connection.client
        while keys:
            async with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zrevrangebyscore(
                        key, top, bottom, start=offsets[key], num=want, withscores=True
                    )
                chunks = await pipe.execute()
            unfinished = []
            for key, chunk in zip(keys, chunks, strict=True):
                offsets[key] += len(chunk)
                for member, score in chunk:
                    entry = (score, member.decode())
                    if after is None or entry < after:
                        candidates.append(entry)
                        kept[key] += 1
                if len(chunk) == want and kept[key] < want:
                    unfinished.append(key)
            keys = unfinished
        candidates.sort(reverse=True)
        found: list[TaskSummary] = []
        for start in range(0, len(candidates), SCAN_CHUNK):
            ids = [task_id for _, task_id in candidates[start : start + SCAN_CHUNK]]
            found += [task for task in await self._summaries(ids) if query.matches(task)]
            if len(found) > query.limit:
                break
        return found

    async def failures(self, limit: int = DEFAULT_FAILURES) -> list[TaskEvent]:
        """The latest ``failed`` events, newest first (one round trip)."""
        if limit <= 0:
            return []
        keys = (self._key("failures"), self._key("failed"))
        with self._translated("read the latest failures"):
            found = await self.connection.client.eval(_LATEST_FAILURES, 2, *keys, limit)
        workers: dict[str, WorkerId] = {}
        with reading(f"a failed event in {self._key('failed')}"):
            return [_event(workers, *json.loads(data)) for data in cast("list[bytes]", found)]

    async def rates(self, minutes: int, now: float | None = None) -> list[MinuteRate]:
        """Event counts per minute for the last ``minutes`` minutes, oldest first."""
        starts = last_minutes(minutes, time.time() if now is None else now)
        with self._translated("read the event rates"):
            async with self.connection.client.pipeline(transaction=False) as pipe:
                for start in starts:
                    pipe.hgetall(self._key("minute", str(start)))
                counts = await pipe.execute()
        with reading(f"an event count in {self._key('minute')}:<start>"):
            return [
                MinuteRate(start, {EventKind(k.decode()): int(v) for k, v in found.items()})
                for start, found in zip(starts, counts, strict=True)
            ]

    async def workers(self, stale_after: float, now: float | None = None) -> list[WorkerStatus]:
        """Each retained worker's latest heartbeat, ordered by worker id."""
        moment = time.time() if now is None else now
        with self._translated("read the workers"):
            found = await self.connection.client.hvals(self._key("workers"))
        with reading(f"a heartbeat in {self._key('workers')}"):
            beats = sorted(
                (WorkerHeartbeat.from_dict(json.loads(data)) for data in found),
                key=lambda beat: beat.worker,
            )
        return [WorkerStatus.judged(beat, stale_after, moment) for beat in beats]

    async def _summaries(self, ids: list[str]) -> list[TaskSummary]:
        """The summaries of ``ids`` (in that order), skipping tasks dropped meanwhile."""
        if not ids:
            return []
        found = cast(
            "list[bytes | None]", await self.connection.client.hmget(self._key("task"), ids)
        )
        return [
            TaskSummary.of(_events(task_id, value))
            for task_id, value in zip(ids, found, strict=True)
            if value is not None
        ]

    def _index(self, query: TaskQuery) -> str | None:
        """The index `tasks` pages through: the narrowest one a filter names (None: none)."""
        if query.state is not None:
            return self._key("state", query.state.value)
        if query.worker is not None:
            return self._key("worker", str(query.worker))
        if query.name is not None:
            return self._key("name", query.name)
        return None

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _translated(self, action: str) -> AbstractContextManager[None]:
        return translated(
            action,
            self.connection.server,
            EventStoreUnavailableError,
            EventStoreError,
            self.connection,
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


class _Batch:
    """A batch's events by task, as the write script takes them.

    Each task gets one line of JSON per batch, ``[worker, name, event, ...]``, each event
    ``[kind, time]`` or ``[kind, time, details]`` (details as ``[[field, value], ...]``), or
    ``[kind, time, details, name, worker]`` when its name or worker is not the line's: the
    task id is the hash field and the worker and name are written once a line, not once an
    event. A line is one call of the JSON encoder; its value is made here as if the task were
    new, and the script rebuilds the few it already holds.

    Attributes:
        tasks: By task id, in the order of their first events: the latest row (the later
            of two at the same time), its worker, the line (a list) and the task's place.
        counts: Events by minute and kind.
        failures: The failed events as the script takes them: the task's place, the time,
            the event's JSON (``[worker, row]``) and the event's place in the batch.
    """

    def __init__(self, rows: Sequence[EventRow], workers: Workers) -> None:
        row_workers = [workers] * len(rows) if isinstance(workers, str) else workers
        self.tasks = tasks = _tasks_of(rows, row_workers)
        self.counts = _counts(rows)
        self.failures: list[list[Any]] = []
        if any(EventKind.FAILED.value in by_kind for by_kind in self.counts.values()):
            self.failures = [
                [tasks[row[1]][3], repr(row[3]), _json([worker, row]), place]
                for place, (row, worker) in enumerate(zip(rows, row_workers, strict=False), 1)
                if row[0] == EventKind.FAILED.value
            ]

    def script_arguments(self) -> list[str | bytes]:
        """The write script's last arguments: the tasks' times and ids, indexes and values.

        Each value is bytes (redis-py passes bytes on as they are: a value of its own costs the
        client less than text would).

        When all of the batch's tasks share their state (or name, or worker), that index takes
        them all, else each key lists its tasks' places.
        """
        tasks = self.tasks.values()
        times = _time_texts([task[0][3] for task in tasks])
        entries: list[str] = [""] * (2 * len(times))
        entries[::2] = times
        entries[1::2] = self.tasks
        values: list[str | bytes] = []
        # by (state, name, worker): the header's part they make, then the tasks' places
        kinds: dict[tuple[str, str, str], list[Any]] = {}
        for place, ((row, worker, line, _), time_text) in enumerate(
            zip(tasks, times, strict=True), 1
        ):
            key = (row[0], row[2], worker)
            same = kinds.get(key)
            if same is None:
                same = kinds[key] = [f"\t{key[0]}\t{_json(key[1])}\t{_json(worker)}\t"]
            same.append(place)
            header = f"{time_text}{same[0]}{len(line) - 2}\t\n"
            values.append(header.encode() + _json_bytes(line))
        indexes: list[list[Any]] = []
        for which, key_kind in enumerate((":state:", ":name:", ":worker:")):
            places: dict[str, list[Any]] = {}
            for key, (_, *some) in kinds.items():
                places.setdefault(key[which], []).extend(some)
            if len(places) == 1:
                indexes += [[key_kind + key] for key in places]  # every task
            else:
                indexes += [[key_kind + key, *some] for key, some in places.items()]
        return [_json(entries), _json(indexes), *values]


def _tasks_of(rows: Sequence[EventRow], workers: Sequence[str]) -> dict[str, list[Any]]:
    """`_Batch.tasks` of rows each with its worker (``workers[i]`` recorded ``rows[i]``)."""
    tasks: dict[str, list[Any]] = {}
    for row, worker in zip(rows, workers, strict=True):
        kind, task_id, name, at, details = row
        task = tasks.get(task_id)
        if task is None:
            line: list[Any] = [worker, name]
            task = tasks[task_id] = [row, worker, line, len(tasks) + 1]
        else:
            line = task[2]
            if at >= task[0][3]:
                task[0] = row
                task[1] = worker
        if name == line[1] and worker == line[0]:
            line.append((kind, at, details) if details else (kind, at))
        else:
            line.append((kind, at, details, name, worker))
    return tasks


def _counts(rows: Sequence[EventRow]) -> dict[int, dict[str, int]]:
    """The rows' counts by minute and kind (counted in C when they share a minute, as most do)."""
    if not rows:
        return {}
    times = list(map(_time_of, rows))
    minute = minute_of(min(times))
    if minute == minute_of(max(times)):
        return {minute: Counter(map(_kind_of, rows))}
    counts: dict[int, dict[str, int]] = {}
    for kind, at in zip(map(_kind_of, rows), times, strict=True):
        per_kind = counts.setdefault(minute_of(at), {})
        per_kind[kind] = per_kind.get(kind, 0) + 1
    return counts


def _time_texts(times: list[float]) -> list[str]:
    """The times as text, exact (the shortest that reads back the same), in one encoder call.

    ``repr`` of each would cost a task's write as much as the rest of it.
    """
    return _json(times)[1:-1].split(",") if times else []


def _events(task_id: str, value: bytes) -> list[TaskEvent]:
    """A task's events from its value in ``P:task``, by time, ties in write order.

    Raise `EventStoreError` when the value is not what the store writes (one event at least).
    """
    with reading(f"task {task_id!r} in the event store's task hash"):
        events = _read_events(task_id, value)
        if not events:
            raise ValueError("no event")
    return events


def _read_events(task_id: str, value: bytes) -> list[TaskEvent]:
    workers: dict[str, WorkerId] = {}
    events: list[TaskEvent] = []
    for line in value.split(b"\n")[1:]:
        data = json.loads(line)
        if data and isinstance(data[0], list):  # ``[[worker, row], ...]``, as written before
            events += [_event(workers, worker, row) for worker, row in data]
            continue
        worker, name = data[0], data[1]
        for entry in data[2:]:
            if len(entry) > 3:
                row = [entry[0], task_id, entry[3], entry[1], entry[2]]
                events.append(_event(workers, entry[4], row))
            else:
                details = entry[2] if len(entry) > 2 else []
                events.append(_event(workers, worker, [entry[0], task_id, name, entry[1], details]))
    events.sort(key=lambda event: event.time)  # stable: ties stay in write order
    return events


def _event(workers: dict[str, WorkerId], worker: str, row: Any) -> TaskEvent:
    """The event of a stored ``[worker, row]`` pair (``workers``: the ids parsed so far)."""
    found = workers.get(worker)
    if found is None:
        found = workers[worker] = WorkerId.parse(worker)
    try:
        return TaskEvent.from_row(found, _stored_row(row)).checked()
    except (IndexError, TypeError, ValueError) as error:
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


def _orjson_encoders(
    standard: Callable[[Any], str],
) -> tuple[Callable[[Any], str], Callable[[Any], bytes]] | None:
    """The orjson encoder where orjson is installed (else None), ``standard`` for the rest.

    It encodes a batch's events several times faster than the standard library: a worker's
    events cost it about half as much. Its JSON reads back the same (non-ASCII text is written
    as UTF-8 rather than escaped); NaN and infinities, which JSON cannot hold, become null. A
    string and what orjson refuses (an integer past 64 bits) go to ``standard``. Two encoders:
    to text, and to UTF-8 bytes (orjson's own output, not decoded).
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

    def encode_bytes(value: Any) -> bytes:
        try:
            return dumps(value, default=_bytes_text)
        except refused:
            return standard(value).encode()

    return encode, encode_bytes


_standard_json = _encoder()
#: The encoders of every write, to text and to UTF-8 bytes: orjson's where installed, else the
#: standard library's.
_json, _json_bytes = _orjson_encoders(_standard_json) or (
    _standard_json,
    lambda value: _standard_json(value).encode(),
)


def _stored_row(row: Any) -> Any:
    """A row as written, from its JSON: a ``sent`` event's message back to bytes."""
    details = row[4]
    if any(key == "message" for key, _ in details):
        row[4] = [
            (key, b64decode(value, validate=True) if key == "message" else value)
            for key, value in details
        ]
    return row


def _recording(events: int, heartbeats: int) -> str:
    """What a write does, for its error: ``record 3 events and 1 worker heartbeat``."""
    parts = [f"{events} event{'s' * (events != 1)}"] if events or not heartbeats else []
    if heartbeats:
        parts.append(f"{heartbeats} worker heartbeat{'s' * (heartbeats != 1)}")
    return "record " + " and ".join(parts)
