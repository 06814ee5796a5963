"""Redis implementations as the conformance suite tests them: a key prefix per run.

``pytest --pyargs taskq_conformance --taskq-broker taskq_redis.conformance:make_broker``
(``--taskq-limiter ...:make_limiter``, ``--taskq-unique-store ...:make_unique_store``,
``--taskq-cancellation-store ...:make_cancellation_store``;
``--taskq-event-store ...:make_event_store`` for the event store, whose prefix is exported in
``TASKQ_CONFORMANCE_REDIS_EVENTS_PREFIX``)

The suite's cross-process check makes a broker in a child process, which must reach the same
queue. So the first call in a process chooses the run's key prefix and exports it in
``TASKQ_CONFORMANCE_REDIS_BROKER_PREFIX``, which child processes inherit; the process that
chose it deletes the run's keys at exit (see `taskq_redis.testing.run_prefix`).
``TASKQ_REDIS_URL`` names the Redis server (default ``redis://127.0.0.1:6379/0``). The lease
is short (`LEASE_S`), so that the suite's checks of held and taken-over messages run fast.
"""

from __future__ import annotations

from taskq_redis.broker import RedisStreamBroker
from taskq_redis.cancellation import RedisCancellationStore
from taskq_redis.event_store import RedisEventStore
from taskq_redis.limiter import RedisLimiter
from taskq_redis.testing import run_prefix, server_url
from taskq_redis.unique import RedisUniqueStore

PREFIX_ENV = "TASKQ_CONFORMANCE_REDIS_BROKER_PREFIX"
EVENTS_PREFIX_ENV = "TASKQ_CONFORMANCE_REDIS_EVENTS_PREFIX"
#: Seconds of the lease of the brokers the suite tests (the default is 30).
LEASE_S = 2.0


def make_broker() -> RedisStreamBroker:
    """A broker on ``TASKQ_REDIS_URL`` under the run's key prefix (fresh by default)."""
    url = server_url()
    return RedisStreamBroker(url, key_prefix=run_prefix(PREFIX_ENV, url), lease_s=LEASE_S)


def make_event_store() -> RedisEventStore:
    """An event store on ``TASKQ_REDIS_URL`` under the run's key prefix (fresh by default)."""
    url = server_url()
    return RedisEventStore(url, prefix=run_prefix(EVENTS_PREFIX_ENV, url))


def make_limiter() -> RedisLimiter:
    """A limiter on ``TASKQ_REDIS_URL`` under the run's key prefix."""
    url = server_url()
    return RedisLimiter(url, key_prefix=run_prefix(PREFIX_ENV, url))


def make_unique_store() -> RedisUniqueStore:
    """A unique key store on ``TASKQ_REDIS_URL`` under the run's key prefix."""
    url = server_url()
    return RedisUniqueStore(url, key_prefix=run_prefix(PREFIX_ENV, url))


def make_cancellation_store() -> RedisCancellationStore:
    """A cancellation store on ``TASKQ_REDIS_URL`` under the run's key prefix."""
    url = server_url()
    return RedisCancellationStore(url, prefix=run_prefix(PREFIX_ENV, url))
