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
        **connection_kwargs: Passed to redis-py's ``BlockingConnectionPool``.

    Raises:
        ValueError: A bad URL.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        key_prefix: str = "taskq",
        max_connections: int | None = None,
        **connection_kwargs: Any,
    ) -> None:
        self.connection = RedisConnection(
            url, "RedisUniqueStore", max_connections, **connection_kwargs
        )
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

        Raises:
            SendUnavailableError: Redis does not answer (the task is not sent).
        """
        with translated(
            f"claim the unique key {quoted(key)}",
            self.connection.server,
            SendUnavailableError,
            SendTaskError,
            self.connection,
        ):
            holder = await self._claim([self.key(key)], [task_id, max(1, round(ttl_s * 1000))])
        return None if holder is None else holder.decode()

    async def release(self, key: str, task_id: str) -> None:
        """Free ``key`` if ``task_id`` holds it.

        Raises:
            RedisUnavailableError: Redis does not answer (the key frees itself at its TTL).
        """
        with translated(
            f"free the unique key {quoted(key)}",
            self.connection.server,
            RedisUnavailableError,
            TaskiqError,
            self.connection,
        ):
            if self._acks is None:
                await self._release([self.key(key)], [task_id])
            else:
                await self._acks.submit(KeyRelease(self.key(key), task_id))

    async def shutdown(self) -> None:
        """Close the connection pool."""
        await self.connection.close()
