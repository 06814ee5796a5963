"""The app of the cancellation tests, run by ``taskq worker cancel_app:broker`` (not collected).

Configured by the environment: ``CANCEL_BROKER`` (``redis``: a Redis Streams broker with
results and cancellations in Redis; ``zmq``: a ZeroMQ broker with both in one SQLite file),
``CANCEL_REDIS_URL``, ``CANCEL_PREFIX``, ``CANCEL_ADDRESS``, ``CANCEL_SQLITE`` and
``CANCEL_OUT``, a directory where each task writes ``<task id>.started`` when it starts and
``<task id>.finished`` if it runs to its end.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from taskq import AsyncBroker, Context, TaskiqDepends

OUT = Path(os.environ["CANCEL_OUT"])


def make_broker() -> AsyncBroker:
    if os.environ["CANCEL_BROKER"] == "redis":
        from taskq_redis import RedisCancellationStore, RedisStreamBroker
        from taskq_result_backends import RedisResultBackend

        url, prefix = os.environ["CANCEL_REDIS_URL"], os.environ["CANCEL_PREFIX"]
        return (
            RedisStreamBroker(url, key_prefix=prefix)
            .with_result_backend(RedisResultBackend(url, prefix=prefix))
            .with_cancellation(RedisCancellationStore(url, prefix=prefix))
        )
    from taskq_result_backends import SQLiteCancellationStore, SQLiteResultBackend
    from taskq_zmq import ZeroMQBroker

    address, path = os.environ["CANCEL_ADDRESS"], os.environ["CANCEL_SQLITE"]
    return (
        ZeroMQBroker(address, address, prefetch=1)
        .with_result_backend(SQLiteResultBackend(path))
        .with_cancellation(SQLiteCancellationStore(path))
    )


broker = make_broker()


def note(context: Context, what: str) -> None:
    (OUT / f"{context.message.task_id}.{what}").write_text(str(time.time()))


@broker.task(task_name="cancel:wait_async")
async def wait_async(seconds: float, context: Context = TaskiqDepends()) -> str:
    """Sleep ``seconds`` (stopped by a cancellation)."""
    note(context, "started")
    await asyncio.sleep(seconds)
    note(context, "finished")
    return "finished"


@broker.task(task_name="cancel:wait_sync")
def wait_sync(seconds: float, context: Context = TaskiqDepends()) -> str:
    """Busy itself ``seconds`` in a thread, looking for its cancellation every 10 ms."""
    note(context, "started")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        context.raise_if_cancelled()
        time.sleep(0.01)
    note(context, "finished")
    return "finished"
