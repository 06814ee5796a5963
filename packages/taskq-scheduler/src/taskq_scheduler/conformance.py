"""The schedule sources as the conformance suite tests them, one factory per source.

``pytest --pyargs taskq_conformance --taskq-schedule-source
taskq_scheduler.conformance:make_memory_source`` (or ``:make_redis_source``).

The Redis factory's first call in a process chooses the key prefix of the run and exports it
in ``TASKQ_CONFORMANCE_SCHEDULE_PREFIX``, so that every instance of the run (and a child
process) shares the store; set it yourself to choose. Otherwise the process that chose
deletes the keys at exit. ``TASKQ_REDIS_URL`` names the server (default
``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import uuid
from typing import TYPE_CHECKING

from taskq_scheduler.memory_source import InMemoryScheduleSource

if TYPE_CHECKING:
    from taskq_scheduler.redis_source import RedisScheduleSource

REDIS_PREFIX_ENV = "TASKQ_CONFORMANCE_SCHEDULE_PREFIX"
REDIS_URL_ENV = "TASKQ_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def make_memory_source() -> InMemoryScheduleSource:
    """A fresh, empty in-memory source."""
    return InMemoryScheduleSource()


def make_redis_source() -> RedisScheduleSource:
    """A source on ``TASKQ_REDIS_URL`` under the run's key prefix (fresh by default)."""
    from taskq_scheduler.redis_source import RedisScheduleSource

    url = os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
    prefix = os.environ.get(REDIS_PREFIX_ENV)
    if not prefix:
        prefix = os.environ[REDIS_PREFIX_ENV] = f"taskq-conformance-{uuid.uuid4().hex}"
        atexit.register(delete_redis_keys, url, prefix)
    return RedisScheduleSource(url, prefix=prefix)


def delete_redis_keys(url: str, prefix: str) -> int:
    """Delete every key under ``prefix`` at ``url`` and return how many; 0 if unreachable."""
    import redis

    deleted = 0
    with contextlib.suppress(redis.RedisError), redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            deleted = int(client.delete(*keys))
    return deleted
