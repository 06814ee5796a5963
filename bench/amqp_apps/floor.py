"""The floor of ``bench/amqp.py``'s "together": bare aiormq on both ends, no task library.

The same chain as the libraries' (a publish waits for its confirm; the consumer acknowledges
each message by hand) with nothing around it: the client publishes persistent, mandatory
messages of a task message's size one after another, each awaiting its confirm, and the
consumer acknowledges every delivery as it arrives. Parametrized, and writing ``ready-<pid>``,
``first`` and ``last``, like ``bench/amqp_apps/app.py``:

    python -m bench.amqp_apps.floor consume   # the worker
    python -m bench.amqp_apps.floor N         # the client: prints ``<t0> <t1>``
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

URL = os.environ["AMQP_BENCH_URL"]
QUEUE = os.environ["AMQP_BENCH_QUEUE"]
COUNT = int(os.environ["AMQP_BENCH_COUNT"])
OUT = Path(os.environ["AMQP_BENCH_DIR"])
#: About the size of a no-op task's message.
BODY = b"x" * 250
PREFETCH = 100


async def consume() -> None:
    """Acknowledge every delivery as it arrives; record the first and the last."""
    connection = await aiormq.connect(URL)
    channel = await connection.channel()
    await channel.queue_declare(QUEUE, durable=True)
    await channel.basic_qos(prefetch_count=PREFETCH)
    done = 0
    finished = asyncio.Event()

    async def on_message(message: DeliveredMessage) -> None:
        nonlocal done
        assert message.delivery_tag is not None
        await channel.basic_ack(message.delivery_tag, wait=False)
        done += 1
        if done == 1:
            (OUT / "first").write_text(repr(time.monotonic()))
        if done == COUNT:
            (OUT / "last").write_text(repr(time.monotonic()))
            finished.set()

    await channel.basic_consume(QUEUE, on_message)
    (OUT / f"ready-{os.getpid()}").touch()
    await finished.wait()
    await connection.close()


async def publish(count: int) -> tuple[float, float]:
    """Publish ``count`` messages one after another, each awaiting its confirm."""
    connection = await aiormq.connect(URL)
    channel = await connection.channel(publisher_confirms=True)
    await channel.queue_declare(QUEUE, durable=True)
    properties = Basic.Properties(delivery_mode=2)
    t0 = time.monotonic()
    for _ in range(count):
        confirmation = await channel.basic_publish(
            BODY, routing_key=QUEUE, properties=properties, mandatory=True
        )
        assert isinstance(confirmation, Basic.Ack)
    t1 = time.monotonic()
    await connection.close()
    return t0, t1


if __name__ == "__main__":
    if sys.argv[1] == "consume":
        asyncio.run(consume())
    else:
        print(*asyncio.run(publish(int(sys.argv[1]))), flush=True)
