"""The schedule sources as the conformance suite tests them, one factory per source.

``pytest --pyargs taskq_conformance --taskq-schedule-source
taskq_scheduler.conformance:make_memory_source`` (or ``:make_redis_source``).

The Redis factory's first call in a process chooses the key prefix of the run and exports it
in ``TASKQ_CONFORMANCE_SCHEDULE_PREFIX``, so that every instance of the run (and a child
process) shares the store; set it yourself to choose. Otherwise the process that chose
deletes the keys at exit (see `taskq_redis.testing.run_prefix`). ``TASKQ_REDIS_URL`` names
the server (default ``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq_scheduler.memory_source import InMemoryScheduleSource

if TYPE_CHECKING:
    from taskq_scheduler.redis_source import RedisScheduleSource

REDIS_PREFIX_ENV = "TASKQ_CONFORMANCE_SCHEDULE_PREFIX"


def make_memory_source() -> InMemoryScheduleSource:
    """A fresh, empty in-memory source."""
    return InMemoryScheduleSource()


def make_redis_source() -> RedisScheduleSource:
    """A source on ``TASKQ_REDIS_URL`` under the run's key prefix (fresh by default)."""
    from taskq_redis.testing import run_prefix, server_url
    from taskq_scheduler.redis_source import RedisScheduleSource

    url = server_url()
    return RedisScheduleSource(url, prefix=run_prefix(REDIS_PREFIX_ENV, url))
