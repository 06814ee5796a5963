"""The cost per task of cancellable, rate-limited and unique tasks against plain ones, on Redis.

For each kind of task, N no-op tasks are kicked one after another by a client broker, then run
by a worker (a `Receiver` on a second broker, in this process), against the same Redis server
(``TASKQ_REDIS_URL``, default ``redis://127.0.0.1:6379/0``), on keys of their own run:

- plain: ``@broker.task``;
- cancellable: the same task on brokers with a `RedisCancellationStore`
  (``broker.with_cancellation(...)``): the worker looks each message up in the store before
  running it, and listens to its channel;
- rate-limited: ``@broker.task(rate_limit="1000000/s")`` (a limit never reached: the figure is
  the cost of the decision, not of waiting), through a `RedisLimiter`;
- unique: ``task.kicker().with_unique().kiq(n)`` (a distinct key per task, so each is sent),
  through a `RedisUniqueStore`.

Round trips are counted on the client side: each request redis-py writes to a connection
(one command, one script call or one pipeline) is one round trip. The brokers' background
loops (delayed messages, lease renewal) count too, the same for every kind. Per task, the
script prints the client's round trips per ``kiq``, the worker's per task run (the worker
reads, acknowledges and decides in batches, hence less than one), the extra ones over plain
on both sides together, and the time per task of each side (median of 3 runs). For the
cancellable kind it also prints how long a running async task takes to stop after
``task.cancel()``: from the call to the task's ``CancelledError`` (median of 10).

    python bench/control.py           # 2,000 tasks per kind
    python bench/control.py --quick   # 300 tasks per kind (smoke test)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# bench/redis.py would shadow redis-py: look for modules outside this directory
sys.path[:] = [
    path
    for path in sys.path
    if os.path.abspath(path or ".") != os.path.dirname(os.path.abspath(__file__))
]

from redis.asyncio.connection import AbstractConnection  # noqa: E402

from taskq import Receiver  # noqa: E402
from taskq_redis import (  # noqa: E402
    RedisCancellationStore,
    RedisLimiter,
    RedisStreamBroker,
    RedisUniqueStore,
)
from taskq_redis.testing import delete_keys  # noqa: E402

URL = os.environ.get("TASKQ_REDIS_URL") or "redis://127.0.0.1:6379/0"
KINDS = ("plain", "cancellable", "rate-limited", "unique")
RUNS = 3
#: Cancellations timed for the latency figure.
CANCELLATIONS = 10


@contextmanager
def counting_round_trips() -> Iterator[list[int]]:
    """Count the requests redis-py sends (``[count]``, read it inside or after the block)."""
    count = [0]
    original = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        count[0] += 1
        await original(self, *args, **kwargs)

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield count
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def make_broker(prefix: str, worker: bool, kind: str) -> RedisStreamBroker:
    broker = (
        RedisStreamBroker(URL, key_prefix=prefix)
        .with_limiter(RedisLimiter(URL, key_prefix=prefix))
        .with_unique_store(RedisUniqueStore(URL, key_prefix=prefix))
    )
    if kind == "cancellable":
        broker.with_cancellation(RedisCancellationStore(URL, prefix=prefix))
    broker.is_worker_process = worker
    return broker


def register(broker: RedisStreamBroker, done: Callable[[], None]) -> dict[str, Any]:
    @broker.task(task_name="bench:plain")
    async def plain(n: int) -> None:
        done()

    @broker.task(task_name="bench:rated", rate_limit="1000000/s")
    async def rated(n: int) -> None:
        done()

    return {
        "plain": plain.kiq,
        "cancellable": plain.kiq,
        "rate-limited": rated.kiq,
        "unique": lambda n: plain.kicker().with_unique().kiq(n),
    }


async def measure(kind: str, tasks: int) -> dict[str, float]:
    prefix = f"taskq-bench-control-{uuid.uuid4().hex}"
    ran = 0
    finished = asyncio.Event()

    def done() -> None:
        nonlocal ran
        ran += 1
        if ran == tasks:
            finished.set()

    client, worker = make_broker(prefix, False, kind), make_broker(prefix, True, kind)
    send = register(client, done)[kind]
    register(worker, done)
    try:
        await client.startup()
        await worker.startup()
        await send(-1)  # warm-up: connections and scripts loaded
        with counting_round_trips() as count:
            started = time.perf_counter()
            for n in range(tasks):
                await send(n)
            client_s, client_trips = time.perf_counter() - started, count[0]
        ran = -1  # the warm-up task runs too
        stop = asyncio.Event()
        with counting_round_trips() as count:
            started = time.perf_counter()
            listening = asyncio.create_task(Receiver(worker, run_startup=False).listen(stop))
            await asyncio.wait_for(finished.wait(), 300)
            worker_s, worker_trips = time.perf_counter() - started, count[0]
        cancel_ms = await cancel_latency(client, worker) if kind == "cancellable" else 0.0
        stop.set()
        await listening
    finally:
        await client.shutdown()
        await worker.shutdown()
        delete_keys(URL, prefix)
    return {
        "client_trips": client_trips / tasks,
        "worker_trips": worker_trips / tasks,
        "client_us": client_s / tasks * 1e6,
        "worker_us": worker_s / tasks * 1e6,
        "cancel_ms": cancel_ms,
    }


async def cancel_latency(client: RedisStreamBroker, worker: RedisStreamBroker) -> float:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run, for smoke tests")
    tasks = 300 if parser.parse_args().quick else 2000
    print(f"Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"Redis at {URL}; {tasks} tasks per kind, median of {RUNS} runs\n")
    figures: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        runs = [asyncio.run(measure(kind, tasks)) for _ in range(RUNS)]
        figures[kind] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    head = (
        f"{'task':<14} {'client trips':>12} {'worker trips':>12} {'extra':>7}"
        f" {'kiq (us)':>9} {'run (us)':>9}  target: <= 1 extra round trip"
    )
    print(head, "-" * len(head), sep="\n")
    plain = figures["plain"]
    for kind, row in figures.items():
        extra = row["client_trips"] - plain["client_trips"]
        extra += row["worker_trips"] - plain["worker_trips"]
        # judged as printed: how batches happen to split moves a figure by a few thousandths
        target = "" if kind == "plain" else ("met" if round(extra, 2) <= 1 else "missed")
        print(
            f"{kind:<14} {row['client_trips']:>12.2f} {row['worker_trips']:>12.2f}"
            f" {extra:>7.2f} {row['client_us']:>9.0f} {row['worker_us']:>9.0f}  {target}"
        )
    cancel_ms = figures["cancellable"]["cancel_ms"]
    print(f"\na running async task stopped {cancel_ms:.1f} ms after task.cancel() (median)")


if __name__ == "__main__":
    main()
