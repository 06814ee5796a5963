"""The Redis broker as the conformance suite tests it: one key prefix per test run.

``pytest --pyargs taskq_conformance --taskq-broker taskq_redis.conformance:make_broker``

The suite's cross-process check makes a broker in a child process, which must reach the same
queue. So the first call in a process chooses the run's key prefix and exports it in
``TASKQ_CONFORMANCE_REDIS_BROKER_PREFIX``, which child processes inherit; the process that
chose it deletes the run's keys at exit. ``TASKQ_REDIS_URL`` names the Redis server (default
``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import uuid

from taskq_redis.broker import RedisStreamBroker
from taskq_redis.connection import DEFAULT_URL

PREFIX_ENV = "TASKQ_CONFORMANCE_REDIS_BROKER_PREFIX"
REDIS_URL_ENV = "TASKQ_REDIS_URL"


def make_broker() -> RedisStreamBroker:
    """A broker on ``TASKQ_REDIS_URL`` under the run's key prefix (fresh by default)."""
    url = os.environ.get(REDIS_URL_ENV) or DEFAULT_URL
    prefix = os.environ.get(PREFIX_ENV)
    if not prefix:
        prefix = os.environ[PREFIX_ENV] = f"taskq-conformance-{uuid.uuid4().hex}"
        atexit.register(delete_keys, url, prefix)
    return RedisStreamBroker(url, key_prefix=prefix)


def delete_keys(url: str, prefix: str) -> int:
    """Delete every key under ``prefix`` at ``url`` and return how many; 0 if unreachable."""
    import redis

    deleted = 0
    with contextlib.suppress(redis.RedisError), redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            deleted += int(client.delete(*keys[start : start + 1000]))
    return deleted
