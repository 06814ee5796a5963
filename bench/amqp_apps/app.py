"""The client and worker program of ``bench/amqp.py``: the same code for each library.

Parametrized by environment variables: ``AMQP_BENCH_LIB`` (``taskq``, ``taskiq``,
``dramatiq`` or ``celery``), ``AMQP_BENCH_URL`` (the RabbitMQ server), ``AMQP_BENCH_QUEUE`` (a
queue name of this run alone), ``AMQP_BENCH_COUNT`` (tasks in the run) and ``AMQP_BENCH_DIR``
(where the files below go).

Workers run ``noop()``, which counts: the first run writes ``first`` and the run that brings
the count to ``AMQP_BENCH_COUNT`` writes ``last``, each holding the monotonic time (shared by
the processes of one Linux host). A worker process writes ``ready-<pid>`` once it imported the
app.

The client (``python -m bench.amqp_apps.app N``) sends ``noop()`` N times one after another
(``await noop.kiq()``; ``send()`` for dramatiq, ``delay()`` for Celery) and prints
``<t0> <t1>``, the monotonic times of the first and after the last send. With
``AMQP_BENCH_BATCH`` set (taskq only), it sends them in batches of that many instead, each
batch one ``kick_many`` of ``kiq_many`` (one confirm wait per batch).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

LIB = os.environ["AMQP_BENCH_LIB"]
URL = os.environ["AMQP_BENCH_URL"]
QUEUE = os.environ["AMQP_BENCH_QUEUE"]
COUNT = int(os.environ["AMQP_BENCH_COUNT"])
BATCH = int(os.environ.get("AMQP_BENCH_BATCH") or 0)
OUT = Path(os.environ["AMQP_BENCH_DIR"])
#: x-queue-version of taskq's and taskiq-aio-pika's classic queues (None: the server's default)
QUEUE_VERSION = int(os.environ.get("AMQP_BENCH_QUEUE_VERSION") or 0) or None
counter = itertools.count(1)  # next() is atomic under the GIL: dramatiq's threads share it


def record() -> None:
    done = next(counter)
    if done == 1:
        (OUT / "first").write_text(repr(time.monotonic()))
    if done == COUNT:
        (OUT / "last").write_text(repr(time.monotonic()))


broker: Any
noop: Any
if LIB == "dramatiq":
    import dramatiq
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=URL)
    dramatiq.set_broker(broker)

    @dramatiq.actor(queue_name=QUEUE)
    def noop() -> None:
        record()

elif LIB == "celery":
    from celery import Celery

    app = Celery("bench", broker=URL)
    app.conf.task_default_queue = QUEUE
    app.conf.task_ignore_result = True

    @app.task(name="bench.noop")
    def noop() -> None:
        record()

else:
    if LIB == "taskq":
        from taskq_amqp import AmqpBroker

        broker = AmqpBroker(URL, queue_name=QUEUE, classic_queue_version=QUEUE_VERSION)
    else:
        from taskiq_aio_pika import AioPikaBroker, Exchange, Queue, QueueType

        # its queues named after the run, and classic of taskq's version (its default is quorum)
        version = {"x-queue-version": QUEUE_VERSION} if QUEUE_VERSION else {}
        broker = AioPikaBroker(
            URL,
            exchange=Exchange(name=QUEUE),
            task_queues=[Queue(name=QUEUE, type=QueueType.CLASSIC, arguments=version)],
            dead_letter_queue=Queue(
                name=f"{QUEUE}.dead_letter", type=QueueType.CLASSIC, arguments=version
            ),
            delay_queue=Queue(name=f"{QUEUE}.delay", type=QueueType.CLASSIC, arguments=version),
        )

    @broker.task(task_name="bench:noop")
    async def noop() -> None:
        record()


if os.environ.get("AMQP_BENCH_ROLE") == "worker":
    (OUT / f"ready-{os.getpid()}").touch()


async def kick_async(count: int) -> tuple[float, float]:
    await broker.startup()
    t0 = time.monotonic()
    for _ in range(count):
        await noop.kiq()
    t1 = time.monotonic()
    await broker.shutdown()
    return t0, t1


async def kick_batches(count: int, size: int) -> tuple[float, float]:
    """Send ``noop()`` ``count`` times with ``kiq_many``, ``size`` messages per batch."""
    await broker.startup()
    t0 = time.monotonic()
    await noop.kiq_many((noop.call() for _ in range(count)), chunk_size=size)
    t1 = time.monotonic()
    await broker.shutdown()
    return t0, t1


def kick_sync(count: int) -> tuple[float, float]:
    send = noop.send if LIB == "dramatiq" else noop.delay
    t0 = time.monotonic()
    for _ in range(count):
        send()
    return t0, time.monotonic()


if __name__ == "__main__":
    n = int(sys.argv[1])
    if LIB in ("dramatiq", "celery"):
        t0, t1 = kick_sync(n)
    else:
        t0, t1 = asyncio.run(kick_batches(n, BATCH) if BATCH else kick_async(n))
    print(t0, t1, flush=True)
