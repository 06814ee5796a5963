"""The RabbitMQ broker as the conformance suite tests it: one queue per test run.

``pytest --pyargs taskq_conformance --taskq-broker taskq_amqp.conformance:make_broker``

The broker is configured with everything it can do (a classic queue with priorities, a
delivery limit; delay is always there). The suite's cross-process check makes a broker in a
child process, which must reach the same queue: the first call in a process chooses the run's
queue name and exports it in ``TASKQ_CONFORMANCE_AMQP_QUEUE``, which child processes inherit;
the process that chose it deletes the run's queues at exit. ``TASKQ_AMQP_URL`` names the
server (default ``amqp://guest:guest@127.0.0.1:5672/``).
"""

from __future__ import annotations

import atexit
import os

from taskq_amqp.broker import AmqpBroker
from taskq_amqp.testing import delete_queues, server_url, unique_queue_name

QUEUE_ENV = "TASKQ_CONFORMANCE_AMQP_QUEUE"
#: The priorities of the run's queue (the suite's labels go up to 9).
MAX_PRIORITY = 9
#: The heartbeat timeout of the suite's connections: the broker's `lease_s` (60 by default).
HEARTBEAT_S = 5

_made: list[AmqpBroker] = []


def make_broker() -> AmqpBroker:
    """A broker on ``TASKQ_AMQP_URL`` and the run's queue, with priorities."""
    url = server_url()
    name = os.environ.get(QUEUE_ENV)
    if not name:
        name = os.environ[QUEUE_ENV] = unique_queue_name("conformance")
        atexit.register(_delete_run_queues, url)
    separator = "&" if "?" in url else "?"
    broker = AmqpBroker(f"{url}{separator}heartbeat={HEARTBEAT_S}", name, max_priority=MAX_PRIORITY)
    _made.append(broker)
    return broker


def _delete_run_queues(url: str) -> None:
    names = {name for broker in _made for name in broker.queue_names()}
    delete_queues(url, sorted(names))
