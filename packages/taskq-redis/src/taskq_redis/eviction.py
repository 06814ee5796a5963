"""A warning for a Redis whose memory policy may evict the queue: messages lost without a word.

A stream has no TTL, so the ``volatile-*`` policies never evict it; an ``allkeys-*`` policy
does, once Redis reaches ``maxmemory``: queued messages, held ones and dead letters vanish
and nothing fails. ``noeviction`` refuses writes instead (a ``kiq`` fails loudly).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

if TYPE_CHECKING:
    import redis.asyncio as aioredis

logger = logging.getLogger("taskq.redis")


async def warn_if_evicting(redis: aioredis.Redis, server: str) -> None:
    """Log a warning if Redis at ``server`` may evict keys without a TTL when it is full.

    Silent when the policy cannot be read (``CONFIG`` disabled or denied, as on some managed
    services): this is advice, not a condition to start.
    """
    try:
        answer = await redis.config_get("maxmemory-policy")
    except RedisError as exc:
        logger.debug("Cannot read maxmemory-policy of Redis at %s: %s", server, exc)
        return
    policy = next((_text(value) for value in dict(answer).values()), "")
    if policy.startswith("allkeys-"):
        logger.warning(
            "Redis at %s has maxmemory-policy %s: once full it evicts queued messages, held "
            "ones and dead letters without an error; set maxmemory-policy noeviction (or a "
            "volatile-* policy) for a queue",
            server,
            policy,
        )


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
