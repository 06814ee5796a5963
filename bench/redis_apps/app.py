"""The client and worker program of ``bench/redis.py``: the same code for taskq, taskiq, dramatiq.

Parametrized by environment variables: ``REDIS_BENCH_LIB`` (``taskq``, ``taskiq`` or
``dramatiq``), ``REDIS_BENCH_URL`` (the Redis server), ``REDIS_BENCH_QUEUE`` (a queue name of
this run alone), ``REDIS_BENCH_COUNT`` (tasks in the run) and ``REDIS_BENCH_DIR`` (where the
files below go).

Workers run ``noop()``, which counts: the first run writes ``first`` and the run that brings
the count to ``REDIS_BENCH_COUNT`` writes ``last``, each holding the monotonic time (shared by
the processes of one Linux host). A worker process writes ``ready`` once it imported the app.

The client (``python -m bench.redis_apps.app N``) kicks ``noop()`` N times one after another
and prints ``<t0> <t1>``, the monotonic times of the first and after the last kick. With
``--bulk`` it sends them the fastest way the library offers: taskq in batches of
``BULK_BATCH`` with its bulk send, taskiq (which has none) one ``kiq()`` after another.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from pathlib import Path

LIB = os.environ["REDIS_BENCH_LIB"]
URL = os.environ["REDIS_BENCH_URL"]
QUEUE = os.environ["REDIS_BENCH_QUEUE"]
COUNT = int(os.environ["REDIS_BENCH_COUNT"])
OUT = Path(os.environ["REDIS_BENCH_DIR"])
BULK_BATCH = 1000
counter = itertools.count(1)  # next() is atomic under the GIL: dramatiq's threads share it


def record() -> None:
    done = next(counter)
    if done == 1:
        (OUT / "first").write_text(repr(time.monotonic()))
    if done == COUNT:
        (OUT / "last").write_text(repr(time.monotonic()))


if LIB == "dramatiq":
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=URL, namespace=QUEUE)
    dramatiq.set_broker(broker)

    @dramatiq.actor(queue_name="bench")
    def noop() -> None:
        record()

else:
    if LIB == "taskq":
        from taskq_redis import RedisStreamBroker

        broker = RedisStreamBroker(URL, queue_name=QUEUE, key_prefix="bench")
    else:
        from taskiq_redis import RedisStreamBroker  # type: ignore[no-redef]

        broker = RedisStreamBroker(URL, queue_name=QUEUE, consumer_group_name="bench")

    @broker.task(task_name="bench:noop")
    async def noop() -> None:
        record()


if os.environ.get("REDIS_BENCH_ROLE") == "worker":
    (OUT / f"ready-{os.getpid()}").touch()


async def kick_async(count: int) -> tuple[float, float]:
    await broker.startup()
    t0 = time.monotonic()
    for _ in range(count):
        await noop.kiq()
    t1 = time.monotonic()
    await broker.shutdown()
    return t0, t1


async def kick_bulk(count: int) -> tuple[float, float]:
    await broker.startup()
    t0 = time.monotonic()
    if LIB == "taskq":
        await noop.kiq_many((noop.call() for _ in range(count)), chunk_size=BULK_BATCH)
    else:  # no bulk send; gathering many kiq() is slower (its pool serialises them)
        for _ in range(count):
            await noop.kiq()
    t1 = time.monotonic()
    await broker.shutdown()
    return t0, t1


def kick_dramatiq(count: int) -> tuple[float, float]:
    t0 = time.monotonic()
    for _ in range(count):
        noop.send()
    return t0, time.monotonic()


if __name__ == "__main__":
    n = int(sys.argv[1])
    if LIB == "dramatiq":
        t0, t1 = kick_dramatiq(n)
    else:
        t0, t1 = asyncio.run(kick_bulk(n) if "--bulk" in sys.argv else kick_async(n))
    print(t0, t1, flush=True)
