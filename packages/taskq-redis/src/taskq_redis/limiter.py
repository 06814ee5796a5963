"""`RedisLimiter`: rate and concurrency limits shared by every worker on every host.

One decision is one call of a Lua script, so two workers can never both take the last place;
the decisions a worker asks for while one round trip is in flight go together in the next
(`BatchedScript`): one round trip per decision at most. Per limited key there are two sorted
sets, timed by the server's clock (``TIME``):

- ``{key_prefix}:limits:{key}:starts``: the start of each run of the last window (score: ms);
  a run may start while fewer than ``count`` are younger than the window (a sliding window:
  never more than ``count`` starts in any window of the period).
- ``{key_prefix}:limits:{key}:refused``: the runs (tokens) the rate refused since the first
  refusal of the last period, each with its place in that order. The n-th is told to wait
  until a start frees, plus ``(n - 1) // count - 1`` whole periods (none for the first
  ``2 * count``): the next window meets twice the runs it can start, enough to fill it
  however late some come, and the runs further behind come back a window's worth at a time
  instead of all at once. A run refused again in the same period keeps its place.
- ``{key_prefix}:limits:{key}:running``: the token (task id) of each run holding a
  concurrency place, scored by the end of its lease. A worker renews the leases of its runs
  every ``slot_lease_s / 3`` seconds; a killed worker's places come free when their leases
  end, and expired places are dropped by the next decision.
- ``{key_prefix}:limits:{key}:owners``: for each token holding a place, the number of the
  run that took it last. A run of the same task again (a retry under its task id, or the
  message delivered again after its worker died) may take its token's place while the run
  before it still ends; the place is then that run's, and the run before giving it back
  frees nothing. An expired place's owner goes with it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from taskq.abc.limiter import TaskLimiter
from taskq.abc.unique_store import stored_key
from taskq.control.limits import CONCURRENCY_RETRY_S
from taskq.task_events import quoted
from taskq.toolkit import cancel_until_done
from taskq_redis.connection import DEFAULT_URL, RedisConnection
from taskq_redis.retrying import (
    DEFAULT_RECONNECT_MAX_DELAY_S,
    DEFAULT_RECONNECT_TIMEOUT_S,
    store_calls,
)
from taskq_redis.script_batch import BatchedScript
from taskq_redis.scripts import _NOW

if TYPE_CHECKING:
    from taskq.control.limits import RateLimit

logger = logging.getLogger("taskq.redis.limiter")

#: Seconds a concurrency place is held without a renewal (a killed worker's places come free
#: after this long).
DEFAULT_SLOT_LEASE_S = 60.0
#: The shortest and longest ``slot_lease_s``: the places are timed in whole milliseconds (a
#: lease that rounds to none would free each place as it is taken), and a killed worker's
#: places stay held for a lease.
MIN_SLOT_LEASE_S = 0.001
MAX_SLOT_LEASE_S = 86_400.0

# Pushes `key`'s expiry to `ms` from now unless it already lasts longer: a holder with a short
# lease must not cut the places of holders with longer ones (workers may differ in
# slot_lease_s, as during a rolling change of it) short with the key.
_EXTEND = """
local function extend(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
"""

# KEYS: starts, running, refused, owners. ARGV: token, rate count (0: none), period ms, max
# concurrency (0: none), lease ms, retry ms. Returns the ms to wait, else 0 when the run may
# start, or minus its run number when it took a concurrency place (see `_RELEASE`).
_ACQUIRE = (
    _NOW
    + _EXTEND
    + """
local now = now_ms()
local token, count, period = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local most, lease = tonumber(ARGV[4]), tonumber(ARGV[5])
if most > 0 then
  -- places whose lease ended (their worker died) go, with their owners (the owners hash
  -- lives on while other places are renewed; a thousand at most here, for unpack)
  local ended = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
  if #ended > 0 then redis.call('HDEL', KEYS[4], unpack(ended)) end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= most and not redis.call('ZSCORE', KEYS[2], token) then
    return tonumber(ARGV[6])
  end
end
if count > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
  if redis.call('ZCARD', KEYS[1]) >= count then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    local place = tonumber(redis.call('HGET', KEYS[3], token))
    if not place then
      place = redis.call('HLEN', KEYS[3]) + 1
      redis.call('HSET', KEYS[3], token, place)
      if place == 1 then redis.call('PEXPIRE', KEYS[3], period) end
    end
    local behind = math.max(0, math.floor((place - 1) / count) - 1) * period
    return math.max(1, tonumber(oldest[2]) + period - now + behind)
  end
  redis.call('ZADD', KEYS[1], now, token .. ':' .. now)
  redis.call('PEXPIRE', KEYS[1], period)
end
if most > 0 then
  redis.call('ZADD', KEYS[2], now + lease, token)
  extend(KEYS[2], lease)
  local run = redis.call('HINCRBY', KEYS[4], token, 1)
  extend(KEYS[4], lease)
  return -run
end
return 0
"""
)

# KEYS: running sets, then their owners hashes; ARGV: lease ms, then the token held in each.
# Pushes their leases on.
_RENEW = (
    _NOW
    + _EXTEND
    + """
local deadline = now_ms() + tonumber(ARGV[1])
local places = #KEYS / 2
for i = 1, places do
  redis.call('ZADD', KEYS[i], 'XX', deadline, ARGV[i + 1])
  extend(KEYS[i], tonumber(ARGV[1]))
  extend(KEYS[places + i], tonumber(ARGV[1]))
end
return places
"""
)

# KEYS: running, owners; ARGV: token, run number. Frees the token's place unless a later run
# of it took the place meanwhile.
_RELEASE = """
local owner = redis.call('HGET', KEYS[2], ARGV[1])
if owner and owner ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""


class RedisLimiter(TaskLimiter):
    """Enforces rate and concurrency limits through Redis, for workers on many hosts.

    ``broker.with_limiter(RedisLimiter(url))``. One round trip (at most; concurrent ones
    share it) decides whether a run may start; one more gives back a concurrency place when
    the run ends.

    Args:
        url: The Redis server (``redis://``, ``rediss://`` or ``unix://``).
        key_prefix: Start of every key (``{key_prefix}:limits:...``).
        slot_lease_s: Seconds a concurrency place stays held without a renewal (default 60,
            from a millisecond to a day); the worker renews its places every third of that.
        max_connections: Most connections to Redis (None: redis-py's default).
        reconnect_max_delay_s: Longest pause between reconnection attempts. Default 5.
        reconnect_timeout_s: Seconds a decision or a place's return keeps retrying while
            Redis does not answer, before raising `RedisUnavailableError`. Default 30; 0: no
            retry.
        **connection_kwargs: Passed to redis-py's ``BlockingConnectionPool``.

    Raises:
        ValueError: A bad URL, a ``slot_lease_s`` outside ``MIN_SLOT_LEASE_S`` to
            ``MAX_SLOT_LEASE_S``, or a bad reconnect setting.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        key_prefix: str = "taskq",
        slot_lease_s: float = DEFAULT_SLOT_LEASE_S,
        max_connections: int | None = None,
        *,
        reconnect_max_delay_s: float = DEFAULT_RECONNECT_MAX_DELAY_S,
        reconnect_timeout_s: float = DEFAULT_RECONNECT_TIMEOUT_S,
        **connection_kwargs: Any,
    ) -> None:
        if not MIN_SLOT_LEASE_S <= slot_lease_s <= MAX_SLOT_LEASE_S:
            raise ValueError(
                f"slot_lease_s must be {MIN_SLOT_LEASE_S:g} to {MAX_SLOT_LEASE_S:g} seconds, "
                f"got {slot_lease_s!r}"
            )
        self.connection = RedisConnection(url, "RedisLimiter", max_connections, **connection_kwargs)
        self.calls = store_calls(self.connection, reconnect_max_delay_s, reconnect_timeout_s)
        self.key_prefix = key_prefix
        self.slot_lease_s = slot_lease_s
        self._acquire = BatchedScript(self.connection, _ACQUIRE)
        self._renew = BatchedScript(self.connection, _RENEW)
        self._release = BatchedScript(self.connection, _RELEASE)
        # (running key, token) of each place held here, in order: [its run number (the
        # latest run here that took it), how many runs here hold it]
        self._held: dict[tuple[str, str], list[int]] = {}
        self._renewer: asyncio.Task[None] | None = None

    def keys(self, key: str) -> tuple[str, str, str, str]:
        """The keys of limited ``key``: its starts, running places, refusals, place owners.

        A ``limit_key`` may make a key of any length from a task's arguments: it is named
        by its `stored_key` form (a long one by its digest), as unique keys are.
        """
        base = f"{self.key_prefix}:limits:{stored_key(key)}"
        return f"{base}:starts", f"{base}:running", f"{base}:refused", f"{base}:owners"

    async def acquire(
        self, key: str, token: str, rate: RateLimit | None, max_concurrency: int | None
    ) -> float:
        """Start a run under ``key`` if its limits allow it now (see `TaskLimiter.acquire`).

        Raises:
            RedisUnavailableError: Redis does not answer (a `TaskiqError`, as other errors of
                the server are).
        """
        keys = list(self.keys(key))
        arguments = [
            token,
            rate.count if rate is not None else 0,
            round(rate.period_s * 1000) if rate is not None else 0,
            max_concurrency or 0,
            round(self.slot_lease_s * 1000),
            round(CONCURRENCY_RETRY_S * 1000),
        ]
        answer = int(
            await self.calls(
                f"check the limits of {quoted(key)}", lambda: self._acquire(keys, arguments)
            )
        )
        if answer > 0:
            return answer / 1000
        if answer < 0:  # a concurrency place, taken by run number -answer
            held = self._held.setdefault((keys[1], token), [0, 0])
            held[0], held[1] = -answer, held[1] + 1
            self._start_renewing()
        return 0.0

    async def release(self, key: str, token: str) -> None:
        """Give back the concurrency place ``token`` holds under ``key``.

        The place is freed once every run here that holds it gave it back, and only if no
        later run of the token (on another worker) took it meanwhile.
        """
        _, running, _, owners = self.keys(key)
        held = self._held.get((running, token))
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del self._held[running, token]
        await self.calls(
            f"give back the concurrency place of {quoted(key)}",
            lambda: self._release([running, owners], [token, held[0]]),
        )

    async def startup(self) -> None:
        """Let calls retry through an outage again (after a `shutdown`)."""
        self.calls.reconnector.closed = False

    async def shutdown(self) -> None:
        """Stop renewing leases and close the connection pool.

        The renewals stop even where redis-py swallows the cancellation of one in flight (it
        then returns as if uncancelled): the renewal loop ends once it is no longer this
        limiter's renewer, and it is cancelled until it has ended. Calls still retrying stop
        at their next failure; later calls try once, until the next `startup`.
        """
        self.calls.reconnector.closed = True
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            await cancel_until_done(renewer)
        await self.connection.close()

    def _start_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        interval = self.slot_lease_s / 3
        renewer = asyncio.current_task()
        while self._held and self._renewer is renewer:
            await asyncio.sleep(interval)
            held = list(self._held)
            if not held or self._renewer is not renewer:  # shut down meanwhile
                return
            try:
                await self._renew(
                    [running for running, _ in held] + [_owners_of(running) for running, _ in held],
                    [round(self.slot_lease_s * 1000), *(token for _, token in held)],
                )
            except Exception as exc:
                logger.warning("Could not renew %d concurrency places: %s", len(held), exc)


def _owners_of(running: str) -> str:
    """The owners hash of the places in ``running`` (see `RedisLimiter.keys`)."""
    return running.removesuffix(":running") + ":owners"
