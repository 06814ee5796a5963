"""The client and worker program of ``bench/zmq.py``: the same code for taskq and taskiq.

Parametrized by environment variables: ``ZMQ_BENCH_LIB`` (``taskq`` or ``taskiq``),
``ZMQ_BENCH_ADDRESS`` (the ``tcp://`` address the client binds and workers connect to) and
``ZMQ_BENCH_DIR`` (where the files below go).

Workers (``<lib> worker bench.zmq_apps.app:broker``) run ``noop(i)``, which records ``i`` and
the time. Every 0.1 s each worker process appends the numbers it ran since the last tick to
``<pid>.nums`` (native ``array('l')`` items), then replaces ``<pid>.count`` with
``<count> <monotonic time of its last task>``. The first ``ping`` a worker runs creates
``<pid>.ready``.

The client (``python -m bench.zmq_apps.app N WORKERS``) pings until every worker has answered,
kicks ``noop(0)`` ... ``noop(N - 1)`` one after another, prints ``<t0> <t1> <cpu>`` (monotonic
times of the first and after the last kick, and the CPU time the client process spent on the
kicks) and keeps the broker open until its stdin closes.
"""

from __future__ import annotations

import array
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

LIB = os.environ["ZMQ_BENCH_LIB"]
ADDRESS = os.environ["ZMQ_BENCH_ADDRESS"]
OUT = Path(os.environ["ZMQ_BENCH_DIR"])
TICK = 0.1
READY_TIMEOUT = 60.0

if LIB == "taskq":
    from taskq import TaskiqEvents
    from taskq_zmq import ZeroMQBroker
else:
    from taskiq import TaskiqEvents
    from taskiq.brokers.zmq_broker import ZeroMQBroker

broker = ZeroMQBroker(zmq_pub_host=ADDRESS, zmq_sub_host=ADDRESS)
ran = array.array("l")
last_run = 0.0
background: list[asyncio.Task[None]] = []


@broker.task(task_name="bench:noop")
async def noop(i: int) -> None:
    global last_run
    ran.append(i)
    last_run = time.monotonic()


@broker.task(task_name="bench:ping")
async def ping() -> None:
    (OUT / f"{os.getpid()}.ready").touch()


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
async def start_reporting(state: Any) -> None:
    background.append(asyncio.create_task(report_forever()))


async def report_forever() -> None:
    base = OUT / str(os.getpid())
    written = 0
    with open(f"{base}.nums", "ab") as nums:  # noqa: ASYNC230 - small writes, 10 per second
        while True:
            await asyncio.sleep(TICK)
            if len(ran) == written:
                continue
            count, last = len(ran), last_run
            nums.write(ran[written:count].tobytes())
            nums.flush()
            written = count
            Path(f"{base}.tmp").write_text(f"{count} {last}")  # noqa: ASYNC240
            os.replace(f"{base}.tmp", f"{base}.count")


async def client(count: int, workers: int) -> None:
    await broker.startup()
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while len(list(OUT.glob("*.ready"))) < workers:  # noqa: ASYNC240 - before timing
            if time.monotonic() > deadline:
                raise SystemExit(f"workers not ready after {READY_TIMEOUT:.0f} s")
            try:  # taskq's kick waits until a worker connects: bound it
                await asyncio.wait_for(ping.kiq(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                continue
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # let the last pings drain before timing
        t0, cpu0 = time.monotonic(), time.process_time()
        for i in range(count):
            await noop.kiq(i)
        print(t0, time.monotonic(), time.process_time() - cpu0, flush=True)
        await asyncio.to_thread(sys.stdin.read)  # keep the socket open until told to stop
    finally:
        await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(client(int(sys.argv[1]), int(sys.argv[2])))
