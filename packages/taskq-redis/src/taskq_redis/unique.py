"""`RedisUniqueStore`: unique task keys shared by clients and workers on many hosts.

A key is ``{key_prefix}:unique:{key}`` (a key over 200 bytes: ``{key_prefix}:unique:sha256:`` and
its digest, see `stored_key`) holding the holder's task id with a TTL: claiming is
one ``SET NX PX`` (in a script that also returns the holder when the key is taken: one round
trip, shared by the claims made meanwhile: see `BatchedScript`), freeing deletes the key only
if the task still holds it. A store given to a `RedisStreamBroker` on its own server frees
keys in the round trips that acknowledge messages (see `RedisUniqueStore.free_with_acks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskq.abc.unique_store import UniqueKeyStore, stored_key
from taskq.exceptions import SendTaskError, TaskiqError
from taskq.task_events import quoted
from taskq_redis.batching import BatchSender
from taskq_redis.connection import DEFAULT_URL, RedisConnection
from taskq_redis.errors import RedisUnavailableError, SendUnavailableError, translated
from taskq_redis.retrying import (
    DEFAULT_RECONNECT_MAX_DELAY_S,
    DEFAULT_RECONNECT_TIMEOUT_S,
    store_calls,
)
from taskq_redis.script_batch import BatchedScript

# KEYS: the key; ARGV: task id, ttl ms. Returns nil when claimed, else the holder's task id.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
"""

# KEYS: the key; ARGV: task id. Deletes the key if that task holds it.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class KeyRelease:
    """A unique key to free in a broker's acknowledgement round trip (`RELEASE_SCRIPT`)."""

    redis_key: str
    task_id: str


class RedisUniqueStore(UniqueKeyStore):
    """Holds unique task keys in Redis, for clients and workers on many hosts.

    ``broker.with_unique_store(RedisUniqueStore(url))``.

    Args:
        url: The Redis server (``redis://``, ``rediss://`` or ``unix://``).
        key_prefix: Start of every key (``{key_prefix}:unique:...``).
        max_connections: Most connections to Redis (None: redis-py's default).
        reconnect_max_delay_s: Longest pause between reconnection attempts. Default 5.
        reconnect_timeout_s: Seconds a claim or a release keeps retrying while Redis does not
            answer, before raising. Default 30; 0: no retry.
        **connection_kwargs: Passed to redis-py's ``BlockingConnectionPool``.

    Raises:
        ValueError: A bad URL or reconnect setting.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        key_prefix: str = "taskq",
        max_connections: int | None = None,
        *,
        reconnect_max_delay_s: float = DEFAULT_RECONNECT_MAX_DELAY_S,
        reconnect_timeout_s: float = DEFAULT_RECONNECT_TIMEOUT_S,
        **connection_kwargs: Any,
    ) -> None:
        self.connection = RedisConnection(
            url, "RedisUniqueStore", max_connections, **connection_kwargs
        )
        self.calls = store_calls(self.connection, reconnect_max_delay_s, reconnect_timeout_s)
        self.key_prefix = key_prefix
        self._claim = BatchedScript(self.connection, _CLAIM)
        self._release = BatchedScript(self.connection, RELEASE_SCRIPT)
        self._acks: BatchSender[Any] | None = None

    def free_with_acks(self, acks: BatchSender[Any]) -> None:
        """Free keys through ``acks``, the acknowledgement batch of a broker on this server.

        `RedisStreamBroker.with_unique_store` calls it: a worker then frees a task's key in
        the round trip that acknowledges messages, instead of one of its own.
        """
        self._acks = acks

    def key(self, key: str) -> str:
        """The Redis key of unique key ``key``: ``{key_prefix}:unique:`` and its `stored_key`."""
        return f"{self.key_prefix}:unique:{stored_key(key)}"

    async def claim(self, key: str, task_id: str, ttl_s: float) -> str | None:
        """Hold ``key`` for ``task_id`` unless it is held (see `UniqueKeyStore.claim`).

        A claim retried after its answer was lost finds the key held by ``task_id``: its own.

        Raises:
            SendUnavailableError: Redis does not answer (the task is not sent).
        """
        arguments = [task_id, max(1, round(ttl_s * 1000))]
        holder = await self.calls(
            f"claim the unique key {quoted(key)}",
            lambda: self._claim([self.key(key)], arguments),
            unavailable_type=SendUnavailableError,
            error_type=SendTaskError,
        )
        if holder is None or holder == task_id.encode():
            return None
        return str(holder.decode())

    async def release(self, key: str, task_id: str) -> None:
        """Free ``key`` if ``task_id`` holds it.

        Raises:
            RedisUnavailableError: Redis does not answer (the key frees itself at its TTL).
        """
        action = f"free the unique key {quoted(key)}"
        if self._acks is None:
            await self.calls(action, lambda: self._release([self.key(key)], [task_id]))
        else:
            with translated(
                action, self.connection.server, RedisUnavailableError, TaskiqError, self.connection
            ):
                await self._acks.submit(KeyRelease(self.key(key), task_id))

    async def startup(self) -> None:
        """Let calls retry through an outage again (after a `shutdown`)."""
        self.calls.reconnector.closed = False

    async def shutdown(self) -> None:
        """Close the connection pool; calls still retrying stop at their next failure."""
        self.calls.reconnector.closed = True
        await self.connection.close()
