"""The tasks of the demo: a ZeroMQ broker whose results go to a SQLite file.

``examples/demo.py`` starts the workers (``taskq worker demo_app:broker --workers 2``) and the
client; both read the address and the database path from the environment it sets.
"""

from __future__ import annotations

import asyncio
import os

from taskq_result_backends import SQLiteResultBackend
from taskq_zmq import ZeroMQBroker

ADDRESS = os.environ.get("TASKQ_DEMO_ADDRESS", "tcp://127.0.0.1:5555")
DATABASE = os.environ.get("TASKQ_DEMO_DATABASE", "taskq-demo.sqlite3")

broker = ZeroMQBroker(zmq_pub_host=ADDRESS, zmq_sub_host=ADDRESS).with_result_backend(
    SQLiteResultBackend(DATABASE)
)


@broker.task
async def greet(name: str) -> str:
    """An async task: waits a little without blocking its worker, then answers."""
    await asyncio.sleep(0.05)
    return f"hello {name}, from worker {os.getpid()}"


@broker.task
def fibonacci(n: int) -> str:
    """A sync task: runs in the worker's thread pool."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return f"fib({n}) = {a}, from worker {os.getpid()}"


@broker.task
def divide(a: float, b: float) -> float:
    """A task that fails for b == 0: the error comes back in its result."""
    return a / b
