"""`BatchedScript`: many calls of one Lua script in one round trip, each with its own answer.

Calls made while a round trip is in flight go together in the next one (a `BatchSender` over
a pipeline of ``EVALSHA``), so a worker running many limited tasks at once pays about one
round trip per batch of decisions, and an idle one pays one per call. A server that lost the
script (a restart, ``SCRIPT FLUSH``) gets it loaded again and the calls it refused retried.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from taskq_redis.batching import BatchSender

if TYPE_CHECKING:
    from taskq_redis.connection import RedisConnection

_Call = tuple[list[str], list[Any], "asyncio.Future[Any]"]


class BatchedScript:
    """The Lua script ``source`` run on ``connection``'s server, its calls coalesced."""

    def __init__(self, connection: RedisConnection, source: str) -> None:
        self.connection = connection
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._sender: BatchSender[_Call] = BatchSender(self._send)

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        """Run the script with ``keys`` and ``args``; return its answer (or raise its error)."""
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._sender.submit((keys, args, answer))
        return await answer

    async def _send(self, calls: list[_Call]) -> None:
        answers = await self._run(calls)
        refused = [n for n, answer in enumerate(answers) if isinstance(answer, NoScriptError)]
        if refused:
            await self.connection.client.script_load(self.source)
            retried = await self._run([calls[n] for n in refused])
            for n, answer in zip(refused, retried, strict=True):
                answers[n] = answer
        for (_, _, future), answer in zip(calls, answers, strict=True):
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    async def _run(self, calls: list[_Call]) -> list[Any]:
        async with self.connection.client.pipeline(transaction=False) as pipe:
            for keys, args, _ in calls:
                pipe.evalsha(self.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))
