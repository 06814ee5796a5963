"""The Redis broker as the conformance suite tests it: one key prefix per test run.

``pytest --pyargs taskq_conformance --taskq-broker taskq_redis.conformance:make_broker``

The suite's cross-process check makes a broker in a child process, which must reach the same
queue. So the first call in a process chooses the run's key prefix and exports it in
``TASKQ_CONFORMANCE_REDIS_BROKER_PREFIX``, which child processes inherit; the process that
chose it deletes the run's keys at exit (see `taskq_redis.testing.run_prefix`).
``TASKQ_REDIS_URL`` names the Redis server (default ``redis://127.0.0.1:6379/0``). The lease
is short (`LEASE_S`), so that the suite's checks of held and taken-over messages run fast.
"""

from __future__ import annotations

from taskq_redis.broker import RedisStreamBroker
from taskq_redis.testing import run_prefix, server_url

PREFIX_ENV = "TASKQ_CONFORMANCE_REDIS_BROKER_PREFIX"
#: Seconds of the lease of the brokers the suite tests (the default is 30).
LEASE_S = 2.0


def make_broker() -> RedisStreamBroker:
    """A broker on ``TASKQ_REDIS_URL`` under the run's key prefix (fresh by default)."""
    url = server_url()
    return RedisStreamBroker(url, key_prefix=run_prefix(PREFIX_ENV, url), lease_s=LEASE_S)
