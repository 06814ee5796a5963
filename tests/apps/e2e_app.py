"""The app of the end-to-end tests: a ZeroMQ broker whose results go to SQLite or Redis.

Configured by the environment the tests set: ``E2E_ADDRESS``, ``E2E_BACKEND`` (``sqlite`` or
``redis``), ``E2E_SQLITE``, ``E2E_REDIS_URL``, ``E2E_REDIS_PREFIX`` and ``E2E_RUNS`` (a directory
where each worker process appends the numbers it ran, one file per process).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from taskq.abc.result_backend import AsyncResultBackend
from taskq_result_backends import RedisResultBackend, SQLiteResultBackend
from taskq_zmq import ZeroMQBroker


def result_backend() -> AsyncResultBackend[Any]:
    if os.environ["E2E_BACKEND"] == "redis":
        return RedisResultBackend(
            os.environ["E2E_REDIS_URL"], prefix=os.environ["E2E_REDIS_PREFIX"]
        )
    return SQLiteResultBackend(os.environ["E2E_SQLITE"])


ADDRESS = os.environ["E2E_ADDRESS"]
broker = ZeroMQBroker(ADDRESS, ADDRESS, prefetch=16).with_result_backend(result_backend())


@broker.task(task_name="e2e:square")
async def square(n: int, pause: float = 0.0) -> list[int]:
    """Return ``[n * n, pid]`` after ``pause`` seconds, and note the run."""
    await asyncio.sleep(pause)
    runs = Path(os.environ["E2E_RUNS"]) / str(os.getpid())
    with runs.open("a") as out:
        out.write(f"{n}\n")
    return [n * n, os.getpid()]
