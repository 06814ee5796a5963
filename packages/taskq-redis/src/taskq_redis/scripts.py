"""The Lua scripts that make multi-step moves atomic: delay, reject, reclaim, heartbeat, hand-back.

Redis runs a script as one command, so two workers can never both move the same due message,
claim the same expired entry or replay the same dead letter. Due times come from the server's
clock (``TIME``), so the hosts' clocks need not agree.

Giving an entry back (`RELEASE`, `HAND_BACK`) never re-adds it as a new entry: that would
reset its delivery count, so a message that kills its worker every time would never reach
``max_deliveries``, and it would lose its place in the stream. Instead the entry moves, in the
group's pending list, to one of two consumers no worker reads as (`RELEASED`, `HANDED_BACK`):
nobody heartbeats it there, it keeps its id (so its stream, hence its priority level, and its
order), and ``XCLAIM ... JUSTID`` keeps its delivery count (``RETRYCOUNT`` sets it where a
delivery is to be undone). Workers take entries from there with `TAKE_HANDED_BACK` (at once)
or `RECLAIM` (once idle for a lease), and the next ``XCLAIM`` counts that delivery, so the
``max_deliveries`` check applies to them as to any other entry. The two differ on purpose: a
handed-back entry's worker only stopped, so it is taken at once; a released entry's processing
ended unsettled (its result backend was down, say), which usually lasts a while, so it waits
for a reclaim, up to a lease, instead of spending its deliveries in a burst of retries.

A delayed message is a member of the delayed set: 16 random hex digits (so that equal messages
stay distinct), the priority level in 3 digits, then the message bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

#: What a script takes as KEYS, and as ARGV.
ScriptKeys = list[bytes | str]
ScriptArgs = list[bytes | str | int | float]

#: The consumer that holds entries their worker released unsettled, until a reclaim takes
#: them (a real consumer's name always ends in ``-<number>``, so none can be called this).
RELEASED = "taskq:released"
#: The consumer that holds entries a stopping worker handed back, until a worker takes them.
HANDED_BACK = "taskq:handed-back"
#: How the reason of a message dead-lettered for its deliveries begins.
DELIVERIES_REASON = "delivered "
#: Dead letters, newest first, that `DROP_DEAD_LETTERS_OF_ACKED` looks through at most.
ACKED_DEAD_LETTER_SCAN = 10_000

_NOW = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# Copies entry `id` of `stream` to `dlq` (with why, from where and when), then acks and
# deletes it. Returns {its 'm' field (false: none), reason} when an entry was moved, 0 when
# there was none, or Redis's error reply when it refused the copy (out of memory): the entry
# is then left as it was, pending, for a later try (a script stopped by an error keeps what it
# wrote before, so the copy comes first and the ack after it).
_DEAD_LETTER = (
    _NOW
    + """
local function dead_letter(stream, dlq, group, id, reason, level, consumer, deliveries)
  local entry = redis.call('XRANGE', stream, id, id)
  if not entry[1] then
    redis.call('XACK', stream, group, id)
    return 0
  end
  local args = {dlq, '*', 'reason', reason, 'source_id', id, 'level', level,
                'consumer', consumer, 'deliveries', deliveries, 'dead_at_ms', now_ms()}
  for _, value in ipairs(entry[1][2]) do table.insert(args, value) end
  local added = redis.pcall('XADD', unpack(args))
  if type(added) == 'table' and added.err then return added end
  redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
  local payload = false
  for k = 1, #entry[1][2], 2 do
    if entry[1][2][k] == 'm' then payload = entry[1][2][k + 1] end
  end
  return {payload, reason}
end
"""
)

# Takes pending entry `id` (held by `owner`, delivered `deliveries` times) for `consumer`, or
# dead-letters it once delivered `max_deliveries` times (0: no limit), with a reason saying
# how its last delivery ended. Returns {what `dead_letter` returned (0: not dead-lettered), the
# entry or nil, the error of a refused dead-lettering or nil}.
_TAKE = (
    _DEAD_LETTER
    + f"""
local function last_delivery(owner)
  if owner == '{RELEASED}' then return 'its last worker released it unsettled' end
  if owner == '{HANDED_BACK}' then return 'handed back by a stopping worker the last time' end
  return 'last to ' .. owner .. ', whose lease expired'
end

local function take(stream, dlq, group, consumer, id, owner, deliveries, max_deliveries, level)
  if max_deliveries > 0 and deliveries >= max_deliveries then
    local reason = '{DELIVERIES_REASON}' .. deliveries .. ' times, never acknowledged ('
      .. last_delivery(owner) .. ')'
    local moved = dead_letter(stream, dlq, group, id, reason, level, owner, deliveries)
    if type(moved) == 'table' and moved.err then return {{0, nil, moved.err}} end
    return {{moved, nil}}
  end
  local got = redis.call('XCLAIM', stream, group, consumer, 0, id)
  if got[1] and type(got[1][2]) == 'table' then return {{0, got[1]}} end
  -- deleted meanwhile (Redis 7 drops it from the pending list itself): nothing to deliver
  if got[1] then redis.call('XACK', stream, group, id) end
  return {{0, nil}}
end
"""
)

#: KEYS: delayed set. ARGV: delay in ms, member. Returns the server time in ms.
KICK_DELAYED = (
    _NOW
    + """
local now = now_ms()
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
return now
"""
)

#: KEYS: delayed set, then the stream of each level. ARGV: max stream length ("" for none),
#: then the messages in one string (one argument costs the client far less than two per
#: message), each as ``"<where> <size>\n"`` followed by its ``size`` bytes: ``where`` is its
#: priority level, or minus its delay in ms for a delayed message, whose bytes are then its
#: member of the delayed set. Sends each message as an ``XADD`` (or `KICK_DELAYED`) sends one,
#: in order. Returns {position (from 1), error} for each message Redis refused (a key of
#: another type, out of memory, ...); the others were sent.
KICK_MANY = (
    _NOW
    + """
local now = nil
local maxlen, batch = ARGV[1], ARGV[2]
local refused = {}
local pos, n = 1, 0
while pos <= #batch do
  local _, header_end, where, size = string.find(batch, '^(%-?%d+) (%d+)\\n', pos)
  where = tonumber(where)
  local data = string.sub(batch, header_end + 1, header_end + tonumber(size))
  pos = header_end + tonumber(size) + 1
  n = n + 1
  local reply
  if where < 0 then
    now = now or now_ms()
    reply = redis.pcall('ZADD', KEYS[1], now - where, data)
  elseif maxlen ~= '' then
    reply = redis.pcall('XADD', KEYS[where + 2], 'MAXLEN', '~', maxlen, '*', 'm', data)
  else
    reply = redis.pcall('XADD', KEYS[where + 2], '*', 'm', data)
  end
  if type(reply) == 'table' and reply.err then
    table.insert(refused, {n, reply.err})
  end
end
return refused
"""
)

#: KEYS: delayed set, then the stream of each level. ARGV: most to move, max stream length
#: ("" for none). Returns {moved, ms until the next due message or -1 when none waits}.
MOVE_DUE = (
    _NOW
    + """
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local level = tonumber(string.sub(member, 17, 19))
  local stream = KEYS[level + 2] or KEYS[#KEYS]
  if ARGV[2] ~= '' then
    redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], '*', 'm', string.sub(member, 20))
  else
    redis.call('XADD', stream, '*', 'm', string.sub(member, 20))
  end
  redis.call('ZREM', KEYS[1], member)
end
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if next_due[2] then wait = math.max(0, tonumber(next_due[2]) - now) end
return {#due, wait}
"""
)

#: KEYS: stream, dead letters. ARGV: group, id, reason, level, consumer. Returns 1 if moved.
REJECT = (
    _DEAD_LETTER
    + """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if not pending[1] then return 0 end
local moved = dead_letter(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],
                          pending[1][4])
if type(moved) == 'table' and moved.err then return moved end  -- refused: nothing changed
if moved == 0 then return 0 end
return 1
"""
)

#: KEYS: stream, dead letters. ARGV: group, consumer, lease in ms, most to take, max deliveries
#: (0: no limit), level. Takes entries idle for longer than the lease (their worker died, or
#: released them a while ago), and those a stopping worker handed back (idle for a lease
#: already); those delivered max deliveries times go to the dead letters instead (left pending
#: if Redis refuses the dead letter). Returns {the dead-lettered ({'m' field or nil, reason}
#: each), claimed entries, the ids of those claimed that were handed back, the error of the
#: last dead letter refused or false}.
RECLAIM = (
    _TAKE
    + """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', ARGV[4])
local max_deliveries = tonumber(ARGV[5])
local dead, claimed, handed, refused = {}, {}, {}, false
for _, p in ipairs(pending) do
  local outcome = take(KEYS[1], KEYS[2], ARGV[1], ARGV[2], p[1], p[2], p[4], max_deliveries,
                       ARGV[6])
  if outcome[1] ~= 0 then table.insert(dead, outcome[1]) end
  if outcome[3] then refused = outcome[3] end
  if outcome[2] then
    table.insert(claimed, outcome[2])
    if p[2] == '"""
    + HANDED_BACK
    + """' then table.insert(handed, p[1]) end
  end
end
return {dead, claimed, handed, refused}
"""
)

#: KEYS: dead letters, then the stream of each level. ARGV: group, consumer, most to take per
#: level, max deliveries (0: no limit). Takes what stopping workers handed back, highest level
#: first and oldest first within a level, whatever its idle time; those delivered max
#: deliveries times go to the dead letters instead (as for `RECLAIM`). Returns {the
#: dead-lettered (as for `RECLAIM`), {level, entry}..., the error of the last dead letter
#: refused or false}.
TAKE_HANDED_BACK = (
    _TAKE
    + f"""
local max_deliveries = tonumber(ARGV[4])
local dead, claimed, refused = {{}}, {{}}, false
for k = #KEYS, 2, -1 do
  local pending = redis.call('XPENDING', KEYS[k], ARGV[1], '-', '+', ARGV[3], '{HANDED_BACK}')
  for _, p in ipairs(pending) do
    local outcome = take(KEYS[k], KEYS[1], ARGV[1], ARGV[2], p[1], p[2], p[4],
                         max_deliveries, k - 2)
    if outcome[1] ~= 0 then table.insert(dead, outcome[1]) end
    if outcome[2] then table.insert(claimed, {{k - 2, outcome[2]}}) end
    if outcome[3] then refused = outcome[3] end
  end
end
return {{dead, claimed, refused}}
"""
)

#: KEYS: stream. ARGV: group, consumer, ids. Resets the idle time of the ids this consumer
#: still owns (their lease starts again) and returns them.
HEARTBEAT = """
local mine = {}
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if pending[1] then table.insert(mine, ARGV[i]) end
end
if #mine > 0 then
  local args = {KEYS[1], ARGV[1], ARGV[2], 0}
  for _, id in ipairs(mine) do table.insert(args, id) end
  table.insert(args, 'JUSTID')  -- JUSTID: the delivery count stays as it is
  redis.call('XCLAIM', unpack(args))
end
return mine
"""

#: KEYS: stream. ARGV: group, consumer, to (`RELEASED` or `HANDED_BACK`), idle time to give
#: in ms, deliveries to undo (0 or 1), ids. Moves those of the ids this consumer still holds
#: to ``to``, so that it stops holding them, their idle time set as given and their delivery
#: count lowered by the deliveries to undo (1 for an entry read but never started: that
#: delivery ran nothing). Returns how many were moved.
RELEASE = """
local moved = 0
for i = 6, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if pending[1] then
    local count = math.max(0, pending[1][4] - tonumber(ARGV[5]))
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[i], 'IDLE', ARGV[4],
               'RETRYCOUNT', count, 'JUSTID')
    moved = moved + 1
  end
end
return moved
"""

#: KEYS: stream. ARGV: group, consumer, lease in ms, most to move. Moves up to that many
#: entries this consumer holds to `HANDED_BACK`, keeping their delivery count, idle for a
#: lease already (so that even a reclaim takes them at once), and removes the consumer once
#: it holds none. Returns how many were handed back (0 when the stream or the group is gone).
HAND_BACK = f"""
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[4]), ARGV[2])
if pending.err then return 0 end  -- no stream or no group (deleted): nothing is held there
if #pending > 0 then
  local args = {{KEYS[1], ARGV[1], '{HANDED_BACK}', 0}}
  for _, p in ipairs(pending) do table.insert(args, p[1]) end
  table.insert(args, 'IDLE')
  table.insert(args, ARGV[3])
  table.insert(args, 'JUSTID')  -- JUSTID: the delivery count stays as it is
  redis.call('XCLAIM', unpack(args))
end
if #pending < tonumber(ARGV[4]) then  -- it holds nothing now: deleting it loses nothing
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return #pending
"""

#: KEYS: dead letters. ARGV: priority level, the oldest id's milliseconds, most dead letters to
#: look through, then ids of that level whose acknowledgement found them settled already.
#: Deletes, among the dead letters made since that millisecond, those of the ids that were
#: dead-lettered for their deliveries: a lease lapsed while the message ran (its worker's
#: heartbeats lost, say) and a reclaim found it delivered ``max_deliveries`` times, but that
#: run went on to its acknowledgement. Returns the ids whose dead letter was deleted.
DROP_DEAD_LETTERS_OF_ACKED = f"""
local wanted, dropped = {{}}, {{}}
for i = 4, #ARGV do wanted[ARGV[i]] = true end
local dead = redis.call('XREVRANGE', KEYS[1], '+', ARGV[2], 'COUNT', tonumber(ARGV[3]))
for _, entry in ipairs(dead) do
  local fields = {{}}
  for k = 1, #entry[2], 2 do fields[entry[2][k]] = entry[2][k + 1] end
  local reason = fields['reason'] or ''
  if wanted[fields['source_id']] and fields['level'] == ARGV[1]
      and string.sub(reason, 1, {len(DELIVERIES_REASON)}) == '{DELIVERIES_REASON}' then
    redis.call('XDEL', KEYS[1], entry[1])
    wanted[fields['source_id']] = nil
    table.insert(dropped, fields['source_id'])
  end
end
return dropped
"""

#: KEYS: dead letters, then the stream of each level. ARGV: ids. Puts each dead letter back
#: on the stream of its level and deletes it. Returns how many were replayed.
REPLAY = """
local replayed = 0
for i = 1, #ARGV do
  local entry = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if entry[1] then
    local fields, level, payload = entry[1][2], 0, nil
    for j = 1, #fields, 2 do
      if fields[j] == 'level' then level = tonumber(fields[j + 1]) or 0 end
      if fields[j] == 'm' then payload = fields[j + 1] end
    end
    if payload then
      local stream = KEYS[math.max(0, level) + 2] or KEYS[#KEYS]
      redis.call('XADD', stream, '*', 'm', payload)
      redis.call('XDEL', KEYS[1], ARGV[i])
      replayed = replayed + 1
    end
  end
end
return replayed
"""


class Scripts:
    """The scripts registered on one client (each call is an EVALSHA, loaded on first use)."""

    def __init__(self, client: aioredis.Redis) -> None:
        """Register every script on ``client``."""
        self.kick_delayed: AsyncScript = client.register_script(KICK_DELAYED)
        self.move_due: AsyncScript = client.register_script(MOVE_DUE)
        self.reject: AsyncScript = client.register_script(REJECT)
        self.reclaim: AsyncScript = client.register_script(RECLAIM)
        self.take_handed_back: AsyncScript = client.register_script(TAKE_HANDED_BACK)
        self.release: AsyncScript = client.register_script(RELEASE)
        self.heartbeat: AsyncScript = client.register_script(HEARTBEAT)
        self.hand_back: AsyncScript = client.register_script(HAND_BACK)
        self.replay: AsyncScript = client.register_script(REPLAY)
        self.drop_dead_letters_of_acked: AsyncScript = client.register_script(
            DROP_DEAD_LETTERS_OF_ACKED
        )
