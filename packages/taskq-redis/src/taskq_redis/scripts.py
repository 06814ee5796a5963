"""The Lua scripts that make multi-step moves atomic: delay, reject, reclaim, heartbeat, hand-back.

Redis runs a script as one command, so two workers can never both move the same due message,
claim the same expired entry or replay the same dead letter. Due times come from the server's
clock (``TIME``), so the hosts' clocks need not agree.

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

_NOW = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# Copies entry `id` of `stream` to `dlq` (with why, from where and when), then acks and
# deletes it. Returns 1 when an entry was moved.
_DEAD_LETTER = (
    _NOW
    + """
local function dead_letter(stream, dlq, group, id, reason, level, consumer, deliveries)
  local entry = redis.call('XRANGE', stream, id, id)
  redis.call('XACK', stream, group, id)
  if not entry[1] then return 0 end
  local args = {dlq, '*', 'reason', reason, 'source_id', id, 'level', level,
                'consumer', consumer, 'deliveries', deliveries, 'dead_at_ms', now_ms()}
  for _, value in ipairs(entry[1][2]) do table.insert(args, value) end
  redis.call('XADD', unpack(args))
  redis.call('XDEL', stream, id)
  return 1
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
return dead_letter(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], pending[1][4])
"""
)

#: KEYS: stream, dead letters. ARGV: group, consumer, lease in ms, most to take, max deliveries
#: (0: no limit), level. Takes entries idle for longer than the lease; those delivered max
#: deliveries times go to the dead letters instead. Returns {dead-lettered, claimed entries}.
RECLAIM = (
    _DEAD_LETTER
    + """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', ARGV[4])
local max_deliveries = tonumber(ARGV[5])
local dead, claimed = 0, {}
for _, p in ipairs(pending) do
  local id, owner, deliveries = p[1], p[2], p[4]
  if max_deliveries > 0 and deliveries >= max_deliveries then
    local reason = 'delivered ' .. deliveries .. ' times, never acknowledged (last to '
      .. owner .. ')'
    dead = dead + dead_letter(KEYS[1], KEYS[2], ARGV[1], id, reason, ARGV[6], owner, deliveries)
  else
    local got = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], id)
    if got[1] and type(got[1][2]) == 'table' then
      table.insert(claimed, got[1])
    elseif got[1] then
      redis.call('XACK', KEYS[1], ARGV[1], id)  -- deleted meanwhile: nothing to deliver
    end
  end
end
return {dead, claimed}
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

#: KEYS: stream. ARGV: group, consumer, most to move. Puts up to that many entries this
#: consumer holds back at the end of the stream as new entries, for any worker to read, and
#: removes the consumer once it holds none. Returns how many were handed back (0 when the
#: stream or the group is gone).
HAND_BACK = """
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[3]), ARGV[2])
if pending.err then return 0 end  -- no stream or no group (deleted): nothing is held there
for _, p in ipairs(pending) do
  local entry = redis.call('XRANGE', KEYS[1], p[1], p[1])
  if entry[1] then redis.call('XADD', KEYS[1], '*', unpack(entry[1][2])) end
  redis.call('XACK', KEYS[1], ARGV[1], p[1])
  redis.call('XDEL', KEYS[1], p[1])
end
if #pending < tonumber(ARGV[3]) then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return #pending
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
        self.heartbeat: AsyncScript = client.register_script(HEARTBEAT)
        self.hand_back: AsyncScript = client.register_script(HAND_BACK)
        self.replay: AsyncScript = client.register_script(REPLAY)
