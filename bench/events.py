"""Benchmark task events: ``taskq status`` over 1,000,000 events, and what recording costs.

Part ``status`` (below) measures ``taskq status``; part ``throughput`` measures tasks per second
with events on as a fraction of events off, one run each way, alternated ``ROUNDS`` times (the
medians are compared; targets 0.7 and 0.85):

- in-memory broker with `InMemoryEventStore`, client and worker in this process: ``--tasks``
  no-op tasks (default 20,000) sent one after another, then waited for; measured in wall time,
  then again in this process's CPU time (steadier on a machine that other work loads);
- Redis broker with the Redis event store, 1 worker process (``taskq worker --workers 1``,
  events on through ``TASKQ_WORKER_EVENTS``): the queue is filled with ``--redis-tasks`` no-op
  tasks (default 50,000) while no worker runs, then a worker empties it; the rate is the tasks
  run between the first and the last, in wall time, then in the worker process's CPU time
  (which leaves out the Redis server's work, and the waits for it). A worker runs 5,000 tasks
  in a tenth of a second on a fast machine, less than a few of the store's batches and the
  first heartbeat: too short a run to tell the recording's cost from its start.

Part ``messages`` measures what keeping each sent event's message costs: with the default
``max_message_bytes`` against ``0`` (sizes only), alternated ``ROUNDS`` times: ``--tasks``
tasks with three arguments sent and run by the in-memory broker with its store, and writes of
``--events`` / 5 events (with `SENT_MESSAGE` on their sent events, or not) to fresh SQLite and
Redis stores.

Part ``status``:

For each store: fill it with ``--events`` events (default 1,000,000: tasks of 4 events each,
sent/received/started/succeeded, 1 in 20 failed instead, spread over the last 20 minutes, by 8
workers with their heartbeats; each sent event keeps a 160-byte message, as `kiq` records it)
in batches of 1,000 through ``write`` (the fill rate is printed too), then measure (after the
bytes stored per event: the SQLite files' size, or the growth of the Redis server's
``used_memory``)

1. query: `taskq.status_report.collect_status` in this process (workers, rates over 16 minutes,
   the last 10 failures, the broker's queue inspection), median and worst of 20 runs;
2. command: ``python -m taskq.cli status APP:broker --events URL --json`` as a fresh process,
   interpreter start and imports included (bytecode cached, as after ``pip install``),
   median and worst of 5 runs after one that caches it; twice: in this environment, and in a
   plain install (``bench/.venv-status``, holding only taskq-core, taskq-inmemory and
   taskq-redis, editable; made on first use, reused after). A development environment has
   more installed than a user's: with the OpenTelemetry SDK present redis-py imports it, and
   reading the installed entry points takes longer the more distributions there are.

The target is 200 ms for the command. The SQLite file is made in a temporary directory and
deleted; the Redis keys live under a fresh prefix on ``TASKQ_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``) and are deleted after. Run from the repository root:

    python bench/events.py                    # both parts; SQLite and Redis, 1,000,000 events
    python bench/events.py --quick            # 50,000 events, 5,000 tasks (smoke run)
    python bench/events.py --stores sqlite
    python bench/events.py --parts throughput
    python bench/events.py --parts messages
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# bench/redis.py would shadow the redis package: this directory is not an import root here.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from taskq.abc.event_store import AsyncEventStore  # noqa: E402
from taskq.event_stores import open_event_store  # noqa: E402
from taskq.status_report import collect_status  # noqa: E402
from taskq.task_events import EventKind, TaskEvent, WorkerHeartbeat, WorkerId  # noqa: E402
from taskq.toolkit import import_broker  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent))  # last: after the redis package
from inmemory import ensure_venv  # noqa: E402

URL = os.environ.get("TASKQ_REDIS_URL") or "redis://127.0.0.1:6379/0"
#: The encoded message each sent event keeps: a typical task's, 160 bytes.
SENT_MESSAGE = (
    b'{"task_id":"3f1c9a7e5b2d4c8e9a0b1c2d3e4f5a6b","task_name":"bench:task1",'
    b'"labels":{"team":"ops"},"args":[42,"eu-west"],"kwargs":{"dry_run":false}}'
).ljust(160)
BATCH = 1000
WORKERS = [WorkerId(f"bench-host-{i % 2}", 1000 + i, i % 4) for i in range(8)]
SPREAD_S = 20 * 60
QUERY_RUNS, COMMAND_RUNS = 20, 5
APP = """
from taskq_inmemory import InMemoryBroker
broker = InMemoryBroker()
"""
REDIS_APP = """
from taskq_redis import RedisStreamBroker
broker = RedisStreamBroker({url!r}, key_prefix={prefix!r})
"""


def batches(
    events: int, now: float, message: bytes | None = SENT_MESSAGE
) -> list[tuple[list[TaskEvent], list[WorkerHeartbeat]]]:
    """The events to write, in batches of `BATCH`, oldest first, with a heartbeat each.

    Each sent event keeps ``message`` (None: none, as with ``max_message_bytes=0``).
    """
    found: list[tuple[list[TaskEvent], list[WorkerHeartbeat]]] = []
    batch: list[TaskEvent] = []
    tasks = events // 4
    for task in range(tasks):
        at = now - SPREAD_S + SPREAD_S * task / tasks
        worker = WORKERS[task % len(WORKERS)]
        task_id = f"task-{task:08d}"
        name = f"bench:task{task % 10}"
        batch += [
            TaskEvent(
                EventKind.SENT,
                task_id,
                name,
                worker,
                at,
                message=message,
                message_size=len(SENT_MESSAGE),
            ),
            TaskEvent(EventKind.RECEIVED, task_id, name, worker, at + 0.001),
            TaskEvent(EventKind.STARTED, task_id, name, worker, at + 0.002),
        ]
        if task % 20 == 0:
            batch.append(
                TaskEvent(
                    EventKind.FAILED,
                    task_id,
                    name,
                    worker,
                    at + 0.003,
                    duration=0.001,
                    error_type="ValueError",
                    error_message=f"bad input {task}",
                )
            )
        else:
            batch.append(
                TaskEvent(EventKind.SUCCEEDED, task_id, name, worker, at + 0.003, duration=0.001)
            )
        if len(batch) >= BATCH:
            beat = WorkerHeartbeat(worker, at, now - 3600, "B", "q", 4, 1, task, task // 20, "0")
            found.append((batch, [beat]))
            batch = []
    if batch:
        found.append((batch, []))
    return found


async def fill(store: AsyncEventStore, events: int, message: bytes | None = SENT_MESSAGE) -> float:
    """Write ``events`` events (fresh heartbeats last); return the events written per second."""
    now = time.time()
    work = batches(events, now, message)
    started = time.perf_counter()
    for batch, beats in work:
        await store.write(batch, beats)
    elapsed = time.perf_counter() - started
    beat = time.time()
    fresh = [WorkerHeartbeat(w, beat, now - 3600, "B", "q", 4, 1, 0, 0, "0") for w in WORKERS]
    await store.write([], fresh)
    return sum(len(batch) for batch, _ in work) / elapsed


async def query_times(store_url: str, broker_target: str) -> list[float]:
    """Seconds of `collect_status` runs against the store (opened once)."""
    store = open_event_store(store_url)
    broker = import_broker(broker_target)
    await store.startup()
    times = []
    try:
        for _ in range(QUERY_RUNS):
            started = time.perf_counter()
            report = await collect_status(store, broker)
            times.append(time.perf_counter() - started)
        assert report.alive == len(WORKERS), report.workers
        assert len(report.failures) == 10
    finally:
        await store.shutdown()
    return times


def plain_install() -> str:
    """The interpreter of ``bench/.venv-status``: only the packages the apps below need."""
    version = tuple(sys.version_info[:2])
    check = f"import taskq_inmemory, taskq_redis, sys; sys.exit(sys.version_info[:2] != {version})"
    names = ("taskq-core", "taskq-inmemory", "taskq-redis")
    packages = [arg for name in names for arg in ("-e", f"packages/{name}")]
    venv = Path(__file__).resolve().parent / ".venv-status"
    return str(ensure_venv(venv, sys.executable, check, packages))


def command_times(
    store_url: str, broker_target: str, app_dir: str, python: str = sys.executable
) -> list[float]:
    """Seconds of ``taskq status --json`` runs by ``python``, each a fresh process."""
    command = [
        python,
        "-m",
        "taskq.cli",
        "status",
        broker_target,
        "--events",
        store_url,
        "--json",
        "--app-dir",
        app_dir,
    ]
    # Bytecode cached, as after a pip install (which compiles it): one run first writes it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    for _ in range(COMMAND_RUNS + 1):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"taskq status failed ({done.returncode}): {done.stderr}")
    return times[1:]


def show(label: str, times: list[float]) -> None:
    median, worst = statistics.median(times) * 1000, max(times) * 1000
    print(f"  {label:<8} median {median:7.1f} ms   worst {worst:7.1f} ms   ({len(times)} runs)")


def bench(store_name: str, events: int, directory: Path) -> None:
    retention = f"max_events={events * 2}&max_age=86400"
    name = f"bench_events_app_{uuid.uuid4().hex[:8]}"
    if store_name == "sqlite":
        url = f"sqlite://{directory / 'events.sqlite3'}?{retention}"
        (directory / f"{name}.py").write_text(APP)
        cleanup = None
    else:
        from taskq_redis.testing import delete_keys

        prefix = f"taskq-bench-{uuid.uuid4().hex}"
        url = f"{URL}?prefix={prefix}&{retention}"
        (directory / f"{name}.py").write_text(REDIS_APP.format(url=URL, prefix=f"{prefix}-q"))
        cleanup = (prefix, delete_keys)
    sys.path.insert(0, str(directory))
    try:
        store = open_event_store(url)
        before = _stored_bytes(store_name, directory)
        rate = asyncio.run(_fill(store, events))
        size = (_stored_bytes(store_name, directory) - before) / events
        print(
            f"{store_name}: {events:,} events written at {rate:,.0f} events/s, "
            f"{size:,.0f} bytes stored per event"
        )
        show("query", asyncio.run(query_times(url, f"{name}:broker")))
        show("command", command_times(url, f"{name}:broker", str(directory)))
        show("plain", command_times(url, f"{name}:broker", str(directory), plain_install()))
    finally:
        if cleanup is not None:
            prefix, delete_keys = cleanup
            delete_keys(URL, prefix)
            delete_keys(URL, f"{prefix}-q")


def _stored_bytes(store_name: str, directory: Path) -> int:
    """The SQLite files' size, or the Redis server's ``used_memory``."""
    if store_name == "sqlite":
        return sum(path.stat().st_size for path in directory.glob("events.sqlite3*"))
    import redis

    with redis.Redis.from_url(URL) as client:
        return int(client.info("memory")["used_memory"])


async def _fill(store: AsyncEventStore, events: int, message: bytes | None = SENT_MESSAGE) -> float:
    await store.startup()
    try:
        return await fill(store, events, message)
    finally:
        await store.shutdown()


# -- part throughput: events on / events off -----------------------------------------------------

ROUNDS = 3
WORKER_TIMEOUT_S = 120.0
THROUGHPUT_APP = """
import os
import time
from pathlib import Path

from taskq_redis import RedisStreamBroker

OUT = Path(os.environ["EVENTS_BENCH_DIR"])
COUNT = int(os.environ["EVENTS_BENCH_COUNT"])
broker = RedisStreamBroker({url!r}, key_prefix={prefix!r})
done = 0


@broker.task(task_name="bench:noop")
async def noop() -> None:
    global done
    done += 1
    if done == 1:
        (OUT / "first_cpu").write_text(repr(time.process_time()))
        (OUT / "first").write_text(repr(time.monotonic()))
    if done == COUNT:
        (OUT / "last_cpu").write_text(repr(time.process_time()))
        (OUT / "last").write_text(repr(time.monotonic()))
"""


async def inmemory_rate(
    tasks: int, events: bool, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Tasks/s of the in-memory broker, with the in-memory event store or without events.

    ``clock`` measures the run: wall time by default; `time.process_time` counts this
    process's CPU time only, which other load on the machine changes much less.
    """
    from taskq.event_stores import InMemoryEventStore
    from taskq_inmemory import InMemoryBroker

    broker = InMemoryBroker()
    if events:
        broker.with_event_store(InMemoryEventStore())

    @broker.task(task_name="bench:noop")
    async def noop() -> None: ...

    async with broker:
        started = clock()
        for _ in range(tasks):
            await noop.kiq()
        await broker.wait_all()
        elapsed = clock() - started
    return tasks / elapsed


def redis_rates(tasks: int, events: bool, directory: Path) -> tuple[float, float]:
    """Tasks/s of one ``taskq worker`` process emptying a Redis queue filled before it started.

    In wall time, then in the worker process's CPU time (steadier on a loaded machine; the
    Redis server's work is not in it).
    """
    from taskq_redis.testing import delete_keys

    prefix = f"taskq-bench-{uuid.uuid4().hex}"
    name = f"bench_throughput_{uuid.uuid4().hex[:8]}"
    out = directory / name
    out.mkdir()
    (directory / f"{name}.py").write_text(THROUGHPUT_APP.format(url=URL, prefix=prefix))
    os.environ.update(EVENTS_BENCH_DIR=str(out), EVENTS_BENCH_COUNT=str(tasks))
    env = {name: value for name, value in os.environ.items() if name != "TASKQ_WORKER_EVENTS"}
    if events:
        env["TASKQ_WORKER_EVENTS"] = f"{URL}?prefix={prefix}-events"
    sys.path.insert(0, str(directory))
    try:
        app = importlib.import_module(name)
        asyncio.run(_fill_queue(app, tasks))
        worker = subprocess.Popen(
            [sys.executable, "-m", "taskq.cli", "worker", f"{name}:broker", "--workers", "1"],
            cwd=directory,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(out / "log").open("wb"),
        )
        try:
            first, last = _wait_for(out / "first", worker), _wait_for(out / "last", worker)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(WORKER_TIMEOUT_S)
    finally:
        sys.path.remove(str(directory))
        delete_keys(URL, prefix)
        delete_keys(URL, f"{prefix}-events")
    cpu = float((out / "last_cpu").read_text()) - float((out / "first_cpu").read_text())
    return (tasks - 1) / (last - first), (tasks - 1) / cpu


async def _fill_queue(app: Any, tasks: int) -> None:
    async with app.broker:
        await app.broker.create_groups()  # the group reads from the start: nothing is missed
        for _ in range(tasks):
            await app.noop.kiq()


def _wait_for(path: Path, worker: subprocess.Popen[bytes]) -> float:
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while not path.exists() or not path.read_text():
        if worker.poll() is not None or time.monotonic() > deadline:
            log = (path.parent / "log").read_text()[-2000:]
            raise SystemExit(f"the worker did not run every task:\n{log}")
        time.sleep(0.02)
    return float(path.read_text())


def fraction(label: str, rate: Any, target: float) -> None:
    """Run ``rate(events)`` off and on, alternated `ROUNDS` times; print the medians' fraction."""
    off: list[float] = []
    on: list[float] = []
    for _ in range(ROUNDS):
        off.append(rate(False))
        on.append(rate(True))
    ratio = statistics.median(on) / statistics.median(off)
    print(
        f"  {label:<28} off {statistics.median(off):9,.0f} tasks/s   on "
        f"{statistics.median(on):9,.0f} tasks/s   on/off {ratio:.2f} (target >= {target})"
    )


def fractions(labels: list[str], rates: Any, target: float) -> None:
    """`fraction` for a ``rates(events)`` that measures several rates in one run, one per label."""
    off: list[tuple[float, ...]] = []
    on: list[tuple[float, ...]] = []
    for _ in range(ROUNDS):
        off.append(rates(False))
        on.append(rates(True))
    for i, label in enumerate(labels):
        off_i, on_i = statistics.median(r[i] for r in off), statistics.median(r[i] for r in on)
        print(
            f"  {label:<28} off {off_i:9,.0f} tasks/s   on {on_i:9,.0f} tasks/s   on/off "
            f"{on_i / off_i:.2f} (target >= {target})"
        )


def throughput(tasks: int, redis_tasks: int, stores: list[str]) -> None:
    print(
        f"throughput with events on / off, {tasks:,} tasks in memory, {redis_tasks:,} on Redis, "
        f"median of {ROUNDS} runs"
    )
    fraction("in-memory + memory store", lambda on: asyncio.run(inmemory_rate(tasks, on)), 0.7)
    fraction(
        "  the same, in CPU time",
        lambda on: asyncio.run(inmemory_rate(tasks, on, time.process_time)),
        0.7,
    )
    if "redis" in stores:
        with tempfile.TemporaryDirectory(prefix="taskq-bench-events-") as directory:
            fractions(
                ["redis + redis store (1 proc)", "  the same, in worker CPU time"],
                lambda on: redis_rates(redis_tasks, on, Path(directory)),
                0.85,
            )


# -- part messages: what keeping each sent message costs ------------------------------------------


async def kiq_rate(tasks: int, keep: bool) -> float:
    """Tasks/s of the in-memory broker and store, sent messages kept or not (bound 0)."""
    from taskq.event_recorder import DEFAULT_MAX_MESSAGE_BYTES
    from taskq.event_stores import InMemoryEventStore
    from taskq_inmemory import InMemoryBroker

    bound = DEFAULT_MAX_MESSAGE_BYTES if keep else 0
    broker = InMemoryBroker().with_event_store(InMemoryEventStore(), max_message_bytes=bound)

    @broker.task(task_name="bench:charge")
    async def charge(order: int, region: str, *, dry_run: bool) -> None: ...

    async with broker:
        started = time.perf_counter()
        for order in range(tasks):
            await charge.kiq(order, "eu-west", dry_run=False)
        await broker.wait_all()
        elapsed = time.perf_counter() - started
    return tasks / elapsed


def write_rate(store_name: str, events: int, keep: bool) -> float:
    """Events/s written to a fresh store, each sent event keeping `SENT_MESSAGE` or not."""
    message = SENT_MESSAGE if keep else None
    if store_name == "sqlite":
        with tempfile.TemporaryDirectory(prefix="taskq-bench-events-") as directory:
            path = Path(directory) / "events.sqlite3"
            return asyncio.run(_fill(open_event_store(f"sqlite://{path}"), events, message))
    from taskq_redis.testing import delete_keys

    prefix = f"taskq-bench-{uuid.uuid4().hex}"
    try:
        return asyncio.run(_fill(open_event_store(f"{URL}?prefix={prefix}"), events, message))
    finally:
        delete_keys(URL, prefix)


def kept_fraction(label: str, rate: Any, unit: str) -> None:
    """Run ``rate(keep)`` without and with messages, alternated; print the medians' fraction."""
    without: list[float] = []
    kept: list[float] = []
    for _ in range(ROUNDS):
        without.append(rate(False))
        kept.append(rate(True))
    ratio = statistics.median(kept) / statistics.median(without)
    print(
        f"  {label:<28} without {statistics.median(without):9,.0f} {unit}   with "
        f"{statistics.median(kept):9,.0f} {unit}   with/without {ratio:.2f}"
    )


def messages(tasks: int, events: int, stores: list[str]) -> None:
    print(f"sent events with / without their message, median of {ROUNDS} runs")
    kept_fraction(
        f"kiq + run, {tasks:,} tasks", lambda keep: asyncio.run(kiq_rate(tasks, keep)), "tasks/s"
    )
    for store_name in stores:
        kept_fraction(
            f"{store_name} writes, {events:,} events",
            lambda keep, name=store_name: write_rate(name, events, keep),
            "events/s",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="50,000 events, 5,000 tasks (1,250 on Redis)"
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--redis-tasks", type=int, default=50_000)
    parser.add_argument("--stores", default="sqlite,redis", help="sqlite, redis or both")
    parser.add_argument(
        "--parts", default="status,throughput,messages", help="status, throughput, messages"
    )
    args = parser.parse_args()
    events = 50_000 if args.quick else args.events
    stores = [name.strip() for name in args.stores.split(",")]
    parts = [name.strip() for name in args.parts.split(",")]
    print(f"load average {os.getloadavg()[0]:.2f}")
    if "status" in parts:
        print(f"taskq status over {events:,} stored events")
        if importlib.util.find_spec("opentelemetry.sdk") is not None:
            print("  (the OpenTelemetry SDK is installed: redis-py imports it with itself)")
        for store_name in stores:
            with tempfile.TemporaryDirectory(prefix="taskq-bench-events-") as directory:
                bench(store_name, events, Path(directory))
    if "throughput" in parts:
        if args.quick:
            throughput(5_000, 1_250, stores)
        else:
            throughput(args.tasks, args.redis_tasks, stores)
    if "messages" in parts:
        messages(5_000 if args.quick else args.tasks, events // 5, stores)


if __name__ == "__main__":
    main()
