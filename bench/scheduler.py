"""Benchmark taskq's TaskiqScheduler against the reference implementation, taskiq 0.13.0.

Both libraries run the same workload, each in a fresh subprocess, one after the other:
10,000 cron schedules ``"<i % 60> * * * *"`` (so about 167 of them fire at every minute)
from a source holding them in a list, sent through a broker whose ``kick`` only records the
time. Each library's own scheduler loop runs (taskq: ``TaskiqScheduler.run``; taskiq: its
``SchedulerLoop.run``, what ``taskiq scheduler`` runs) over a window of 30 s of wall time
that contains one minute boundary, after a warm-up in which both read their schedules.

Measured, over the window:

1. CPU per tick: ``time.process_time`` of the process, sampled every second; the reference
   checks every schedule once a second, so a second is its tick. Reported: the mean over the
   window, and the busiest second (the one of the minute boundary, where the fires are sent).
2. fire latency: from the fire's due time (the minute boundary) to its ``kick``, p50 / p99 /
   max over the fires of the boundary.

Run from the repository root, with taskq installed in the current interpreter:

    python bench/scheduler.py            # 10,000 schedules (about 2-3 minutes: it waits
                                         # for the minute boundaries)
    python bench/scheduler.py --quick    # 1,000 schedules

taskiq is installed with pip into ``bench/.venv-taskiq`` (created on first use, reused after).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from typing import Any

#: The window starts this many seconds into a minute, after a warm-up of WARM_UP_S.
WINDOW_START_S = 45
WARM_UP_S = 5
WINDOW_S = 30

# -- workload: runs in a subprocess, parametrized only by the library -------------------------


def make_broker(lib: Any, kicks: list[float]) -> Any:
    class RecordingBroker(lib.AsyncBroker):  # type: ignore[misc, name-defined]
        async def kick(self, message: Any) -> None:
            kicks.append(time.time())

        async def listen(self) -> Any:
            raise NotImplementedError
            yield

    return RecordingBroker()


def make_source(lib: Any, schedules: list[Any]) -> Any:
    class ListSource(lib.ScheduleSource):  # type: ignore[misc, name-defined]
        async def get_schedules(self) -> list[Any]:
            return schedules

    return ListSource()


def make_schedules(lib_name: str, count: int) -> list[Any]:
    if lib_name == "taskq":
        from taskq import ScheduledTask
    else:
        from taskiq import ScheduledTask  # type: ignore[no-redef]
    return [
        ScheduledTask(
            task_name="noop",
            labels={},
            args=[],
            kwargs={},
            cron=f"{i % 60} * * * *",
            schedule_id=f"s{i}",
        )
        for i in range(count)
    ]


async def wait_for_window() -> float:
    """Sleep until WINDOW_START_S - WARM_UP_S into a minute; return the window's start."""
    now = time.time()
    start = now - now % 60 + WINDOW_START_S
    if start - WARM_UP_S < now:
        start += 60
    await asyncio.sleep(start - WARM_UP_S - now)
    return start


async def sample_cpu(until: float, samples: list[float]) -> None:
    while time.time() < until:
        samples.append(time.process_time())
        await asyncio.sleep(1 - time.time() % 1)


async def workload(lib_name: str, count: int) -> dict[str, Any]:
    lib = __import__(lib_name)
    kicks: list[float] = []
    broker = make_broker(lib, kicks)

    @broker.task(task_name="noop")
    async def noop() -> None: ...

    source = make_source(lib, make_schedules(lib_name, count))
    window = await wait_for_window()
    if lib_name == "taskq":
        scheduler = lib.TaskiqScheduler(broker, [source])
        await scheduler.startup()
        stop = asyncio.Event()
        loop_task = asyncio.create_task(scheduler.run(stop, update_interval=60))
    else:
        from taskiq.cli.scheduler.run import SchedulerLoop

        scheduler = lib.TaskiqScheduler(broker, [source])
        await scheduler.startup()
        loop_task = asyncio.create_task(
            SchedulerLoop(scheduler).run(update_interval=timedelta(seconds=60))
        )
    await asyncio.sleep(window - time.time())
    samples: list[float] = []
    await sample_cpu(window + WINDOW_S, samples)
    loop_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop_task
    per_second = [b - a for a, b in itertools.pairwise(samples)]
    boundary = window - window % 60 + 60
    latencies = sorted(k - boundary for k in kicks if boundary <= k < boundary + 30)
    return {
        "cpu_mean_ms": statistics.fmean(per_second) * 1000,
        "cpu_max_ms": max(per_second) * 1000,
        "fires": len(latencies),
        "latency_ms": {
            "p50": percentile(latencies, 50) * 1000,
            "p99": percentile(latencies, 99) * 1000,
            "max": latencies[-1] * 1000 if latencies else float("nan"),
        },
    }


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


# -- orchestration ------------------------------------------------------------------------


def measure(python: Any, env: dict[str, str], lib_name: str, count: int) -> dict[str, Any]:
    import subprocess

    proc = subprocess.run(
        [python, __file__, "--workload", lib_name, "--count", str(count)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{lib_name} run failed:\n{proc.stdout}{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 schedules instead of 10,000")
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=10_000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:
        print(json.dumps(asyncio.run(workload(args.workload, args.count))))
        return

    from inmemory import ensure_reference, taskq_env

    count = 1_000 if args.quick else args.count
    reference_python = ensure_reference()
    print(f"Python {platform.python_version()}, {count:,} cron schedules, window {WINDOW_S} s")
    ours = measure(sys.executable, taskq_env(), "taskq", count)
    reference_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    theirs = measure(reference_python, reference_env, "taskiq", count)
    rows = [
        ("CPU per tick (1 s), mean", "ms", ours["cpu_mean_ms"], theirs["cpu_mean_ms"]),
        ("CPU per tick, busiest (the fires)", "ms", ours["cpu_max_ms"], theirs["cpu_max_ms"]),
        ("fire latency p50", "ms", ours["latency_ms"]["p50"], theirs["latency_ms"]["p50"]),
        ("fire latency p99", "ms", ours["latency_ms"]["p99"], theirs["latency_ms"]["p99"]),
        ("fire latency max", "ms", ours["latency_ms"]["max"], theirs["latency_ms"]["max"]),
    ]
    print(f"{'':36} {'taskq':>10} {'taskiq':>10} {'taskiq/taskq':>13}")
    for name, unit, a, b in rows:
        ratio = b / a if a else float("inf")
        print(f"{name:36} {a:>8.2f}{unit} {b:>8.2f}{unit} {ratio:>12.1f}x")
    print(f"fires at the boundary: taskq {ours['fires']}, taskiq {theirs['fires']}")


if __name__ == "__main__":
    main()
