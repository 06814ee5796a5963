"""The app of the Prometheus test: a ZeroMQ broker with retries and metrics, results in SQLite.

Configured by the environment the test sets: ``METRICS_ADDRESS`` (the ZeroMQ address),
``METRICS_PORT`` (the endpoint's port), ``METRICS_PATH`` and ``METRICS_SQLITE``.
"""

from __future__ import annotations

import asyncio
import os

from taskq_middlewares import PrometheusMiddleware, SimpleRetryMiddleware
from taskq_result_backends import SQLiteResultBackend
from taskq_zmq import ZeroMQBroker

ADDRESS = os.environ["METRICS_ADDRESS"]
broker = (
    ZeroMQBroker(ADDRESS, ADDRESS, prefetch=2)
    .with_result_backend(SQLiteResultBackend(os.environ["METRICS_SQLITE"]))
    .with_middlewares(
        PrometheusMiddleware(
            metrics_path=os.environ["METRICS_PATH"],
            server_addr="127.0.0.1",
            server_port=int(os.environ["METRICS_PORT"]),
        ),
        SimpleRetryMiddleware(default_retry_count=2),
    )
)


@broker.task(task_name="metrics:work", retry_on_error=True)
async def work(n: int) -> int:
    """Return the worker's pid; multiples of 10 always fail (and are retried once)."""
    await asyncio.sleep(0.01)
    if n % 10 == 0:
        raise ValueError(f"{n} is a multiple of 10")
    return os.getpid()
