"""`RedisCancellationStore`: cancellations in Redis, for clients and workers on many hosts."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from redis.asyncio.client import PubSub

from taskq.abc.cancellation import DEFAULT_CANCELLATION_TTL_S, Cancellation, CancellationStore
from taskq.capabilities import Capability
from taskq.exceptions import TaskiqError
from taskq_redis.batching import BatchSender
from taskq_redis.connection import DEFAULT_URL, RedisConnection
from taskq_redis.errors import RedisUnavailableError, translated

logger = logging.getLogger("taskq.redis")

#: A lookup waiting for its answer: the task id, and where its cancellation (or None) goes.
_Lookup = tuple[str, "asyncio.Future[Cancellation | None]"]

#: Seconds a listener waits for the confirmation of its subscription.
SUBSCRIBE_TIMEOUT_S = 10.0
#: Seconds one read of the channel blocks before it is tried again.
READ_BLOCK_S = 1.0


class RedisCancellationStore(CancellationStore):
    """Records each cancellation as a key with a TTL and announces it on a pub/sub channel.

    ``{prefix}:cancelled:{task_id}`` holds the reason for ``ttl_s`` seconds; listeners
    subscribe to ``{prefix}:cancelled``, so a running task is told at once wherever it runs.
    Lookups made while one is in flight go together in the next ``MGET``: a worker draining
    a backlog pays far less than one round trip per message.

    Args:
        url: The server (see `RedisConnection`).
        prefix: The start of every key and of the channel.
        ttl_s: Seconds a cancellation is kept (default 31 days: the longest delay, and a
            day).
        max_connections: Most connections of the pool (None: redis-py's default).
        **connection_kwargs: Passed to redis-py's pool (``password``, ...).
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CROSS_PROCESS})

    def __init__(
        self,
        url: str = DEFAULT_URL,
        prefix: str = "taskq",
        ttl_s: float = DEFAULT_CANCELLATION_TTL_S,
        max_connections: int | None = None,
        **connection_kwargs: Any,
    ) -> None:
        super().__init__(ttl_s)
        self.connection = RedisConnection(
            url, "RedisCancellationStore", max_connections, **connection_kwargs
        )
        self.prefix = prefix
        self.channel = f"{prefix}:cancelled"
        self._lookups: BatchSender[tuple[str, asyncio.Future[Cancellation | None]]] = BatchSender(
            self._look_up
        )

    def key(self, task_id: str) -> str:
        """The key recording the cancellation of ``task_id``."""
        return f"{self.prefix}:cancelled:{task_id}"

    async def startup(self) -> None:
        """Check that the server answers."""
        with self._errors("connect"):
            await self.connection.client.ping()

    async def shutdown(self) -> None:
        """Close the connections."""
        await self.connection.close()

    async def cancel(self, task_id: str, reason: str = "") -> None:
        """Write the key (with its TTL) and publish the cancellation, in one transaction."""
        payload = json.dumps({"task_id": task_id, "reason": reason})
        with self._errors(f"cancel task {task_id}"):
            async with self.connection.client.pipeline(transaction=True) as pipe:
                pipe.set(self.key(task_id), reason.encode(), px=max(1, round(self.ttl_s * 1000)))
                pipe.publish(self.channel, payload)
                await pipe.execute()

    async def cancellation(self, task_id: str) -> Cancellation | None:
        """Return the unexpired cancellation of ``task_id``, or None (looked up with others)."""
        answer: asyncio.Future[Cancellation | None] = asyncio.get_running_loop().create_future()
        await self._lookups.submit((task_id, answer))
        return await answer

    async def _look_up(
        self, lookups: list[tuple[str, asyncio.Future[Cancellation | None]]]
    ) -> None:
        """Answer ``lookups`` with one ``MGET``."""
        keys = [self.key(task_id) for task_id, _ in lookups]
        with self._errors(f"check the cancellation of {len(keys)} task(s)"):
            reasons = await self.connection.client.mget(keys)
        for (task_id, answer), reason in zip(lookups, reasons, strict=True):
            if reason is None:
                answer.set_result(None)
            else:
                text = reason.decode(errors="replace") if isinstance(reason, bytes) else reason
                answer.set_result(Cancellation(task_id, text))

    async def listen(self) -> AsyncGenerator[Cancellation, None]:
        """Subscribe to the channel (confirmed) and return what is published on it from then on."""
        pubsub = self.connection.client.pubsub()
        try:
            with self._errors(f"subscribe to {self.channel}"):
                await pubsub.subscribe(self.channel)
                await _confirmed(pubsub)
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis-py 8.2
            raise
        return self._read(pubsub)

    async def _read(self, pubsub: PubSub) -> AsyncGenerator[Cancellation, None]:
        try:
            while True:
                with self._errors(f"read {self.channel}"):
                    message = await pubsub.get_message(timeout=READ_BLOCK_S)
                if message is not None and message["type"] == "message":
                    cancellation = _decoded(message["data"])
                    if cancellation is not None:
                        yield cancellation
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis-py 8.2

    def _errors(self, action: str) -> AbstractContextManager[None]:
        return translated(
            action, self.connection.server, RedisUnavailableError, TaskiqError, self.connection
        )


async def _confirmed(pubsub: PubSub) -> None:
    """Wait for the server's confirmation of the subscription."""
    message = await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT_S)
    if message is None or message["type"] != "subscribe":
        raise RedisUnavailableError(f"the subscription was not confirmed: {message!r}")


def _decoded(data: Any) -> Cancellation | None:
    """The cancellation a channel message announces; None (logged) for anything else."""
    try:
        fields = json.loads(data)
        task_id, reason = fields["task_id"], fields.get("reason", "")
        if isinstance(task_id, str) and isinstance(reason, str):
            return Cancellation(task_id, reason)
    except (ValueError, TypeError, KeyError):
        pass
    logger.warning("Ignoring a message on the cancellation channel that is not one: %.200r", data)
    return None
