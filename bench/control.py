"""What controlling tasks costs on Redis: each control's cost per task against a plain task.

Each row of the table is a `Variant`: how its brokers are set up and how its task is declared
and sent. For each, one process runs a client broker and a worker broker (a `Receiver`) on a
fresh key prefix of the Redis server (``TASKQ_REDIS_URL``, default
``redis://127.0.0.1:6379/0``); the client sends N no-op tasks one after another and the run
ends when the worker ran the last one. Two figures per row:

- Redis round trips per task: every command (or pipeline) redis-py sends from this process,
  client and worker together, counted at the connection, divided by N. Background traffic
  (the worker's blocking reads, lease renewals) is included and about the same in each row,
  so the difference to the plain row is the control's own cost.
- microseconds per task: the wall time from the first send to the last run, divided by N
  (the fastest of 3 runs; the rows take turns, so that a slow moment hits them alike).

The cancellable row also times how long a running async task takes to stop after
``task.cancel()``: from the call to the task's ``CancelledError`` (the median of 10), through
the store's pub/sub channel.

    python bench/control.py           # 2,000 tasks per row
    python bench/control.py --quick   # 300 tasks per row

A row is added by appending a `Variant` to `VARIANTS`. On a shared machine the times vary by
20% or more between runs; the round trips do not.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# bench/redis.py would stand for the redis package: drop this script's directory from the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from redis.asyncio.connection import AbstractConnection  # noqa: E402

from taskq import AsyncBroker, AsyncKicker, AsyncTaskiqDecoratedTask, Receiver  # noqa: E402
from taskq_redis import RedisCancellationStore, RedisStreamBroker  # noqa: E402
from taskq_redis.testing import delete_keys  # noqa: E402

URL = os.environ.get("TASKQ_REDIS_URL") or "redis://127.0.0.1:6379/0"
#: Cancellations timed for the latency figure.
CANCELLATIONS = 10
#: Runs of each row; the fastest is reported.
RUNS = 3


@dataclass(frozen=True)
class Variant:
    """One row: how its brokers are set up, and how its task is declared and sent."""

    name: str
    #: Called on the client broker and on the worker broker with (broker, url, key prefix).
    configure: Callable[[AsyncBroker, str, str], object] = lambda broker, url, prefix: None
    #: Options of ``@broker.task(...)`` for the measured task.
    task_options: dict[str, Any] = field(default_factory=dict)
    #: The kicker each task is sent with (a unique task would add ``.with_unique()``).
    kicker: Callable[[AsyncTaskiqDecoratedTask[Any, Any], int], AsyncKicker[Any, Any]] = (
        lambda task, n: task.kicker()
    )


def with_cancellation(broker: AsyncBroker, url: str, prefix: str) -> object:
    """Give ``broker`` a Redis cancellation store on the run's prefix."""
    return broker.with_cancellation(RedisCancellationStore(url, prefix=prefix))


VARIANTS = [
    Variant("plain"),
    Variant("cancellable", configure=with_cancellation),
]


class RoundTrips:
    """Counts what redis-py sends from this process: one per command or pipeline."""

    def __init__(self) -> None:
        self.count = 0
        self._original = AbstractConnection.send_packed_command

    def __enter__(self) -> RoundTrips:
        original, counter = self._original, self

        async def counted(connection: Any, command: Any, check_health: bool = True) -> None:
            counter.count += 1
            await original(connection, command, check_health)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc_info: object) -> None:
        AbstractConnection.send_packed_command = self._original  # type: ignore[method-assign]


@dataclass
class Row:
    """The figures of one variant."""

    name: str
    round_trips: float
    micros: float
    cancel_ms: float | None = None


async def measure(variant: Variant, tasks: int) -> Row:
    """Send ``tasks`` tasks of ``variant`` through Redis and time them to the last run."""
    prefix = f"taskq-bench-control-{uuid.uuid4().hex[:12]}"
    done = asyncio.Event()
    ran = 0

    def make(worker: bool) -> tuple[AsyncBroker, AsyncTaskiqDecoratedTask[Any, Any]]:
        broker = RedisStreamBroker(URL, key_prefix=prefix)
        broker.is_worker_process = worker
        variant.configure(broker, URL, prefix)

        @broker.task(task_name="bench:noop", **variant.task_options)
        async def noop() -> None:
            nonlocal ran
            ran += 1
            if ran == tasks:
                done.set()

        return broker, noop

    client, task = make(worker=False)
    worker, _ = make(worker=True)
    stop = asyncio.Event()
    try:
        await client.startup()
        await worker.startup()
        consumer = asyncio.create_task(Receiver(worker).listen(stop))
        await asyncio.sleep(0.5)  # the worker's first read is waiting
        with RoundTrips() as trips:
            started = time.perf_counter()
            for n in range(tasks):
                await variant.kicker(task, n).kiq()
            await asyncio.wait_for(done.wait(), 600)
            elapsed = time.perf_counter() - started
        row = Row(variant.name, trips.count / tasks, elapsed / tasks * 1e6)
        if worker.cancellation is not None:
            row.cancel_ms = await cancel_latency(client, worker)
        stop.set()
        await consumer
    finally:
        await client.shutdown()
        await worker.shutdown()
        delete_keys(URL, prefix)
    return row


async def cancel_latency(client: AsyncBroker, worker: AsyncBroker) -> float:
    """Median milliseconds from ``task.cancel()`` to the running task's ``CancelledError``."""
    started, stopped = asyncio.Event(), asyncio.Event()
    stopped_at = 0.0

    async def sleep_long() -> None:
        nonlocal stopped_at
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped_at = time.perf_counter()
            stopped.set()
            raise

    worker.register_task(sleep_long, "bench:sleeper")
    sleeper = client.register_task(sleep_long, "bench:sleeper")
    latencies = []
    for _ in range(CANCELLATIONS):
        started.clear()
        stopped.clear()
        task = await sleeper.kiq()
        await asyncio.wait_for(started.wait(), 60)
        asked = time.perf_counter()
        await task.cancel()
        await asyncio.wait_for(stopped.wait(), 60)
        latencies.append((stopped_at - asked) * 1000)
    return statistics.median(latencies)


def report(rows: list[Row], tasks: int) -> None:
    plain = rows[0]
    print(f"Redis {URL}, {tasks} no-op tasks per row, sent one after another")
    print(f"{'row':<14} {'round trips/task':>17} {'extra':>7} {'us/task':>9} {'extra':>8}")
    for row in rows:
        extra_trips = row.round_trips - plain.round_trips
        extra_us = row.micros - plain.micros
        print(
            f"{row.name:<14} {row.round_trips:>17.2f} {extra_trips:>+7.2f} "
            f"{row.micros:>9.0f} {extra_us:>+8.0f}"
        )
    for row in rows:
        if row.cancel_ms is not None:
            print(f"{row.name}: a running task stopped {row.cancel_ms:.1f} ms after cancel()")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 tasks per row")
    args = parser.parse_args()
    tasks = 300 if args.quick else 2000
    runs: dict[str, list[Row]] = {variant.name: [] for variant in VARIANTS}
    for _ in range(RUNS):
        for variant in VARIANTS:
            runs[variant.name].append(await measure(variant, tasks))
    report([min(rows, key=lambda row: row.micros) for rows in runs.values()], tasks)


if __name__ == "__main__":
    asyncio.run(main())
