"""Benchmark the per-task cost of each middleware, for taskq and the reference (taskiq 0.13.0).

For each library, in a fresh subprocess running the same code below, on its in-memory broker:
kiq N no-op async tasks, then await every result in order, with no middleware ("bare") and
with each middleware alone: SimpleRetryMiddleware, SmartRetryMiddleware, PrometheusMiddleware.
The tasks succeed, so this is what a middleware costs on the common path. The overhead of a
middleware is (time with it - bare time) / N, in microseconds per task. Each configuration
runs REPEATS times, interleaved with the others so drift hits them alike; the fastest run of
each is used.

Run from the repository root, with taskq and taskq-middlewares[prometheus] installed:

    python bench/middlewares.py           # full run (20,000 tasks)
    python bench/middlewares.py --quick   # smoke test (2,000 tasks)

taskiq and prometheus-client are installed into ``bench/.venv-taskiq`` (see inmemory.py).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import inmemory  # noqa: E402 - the shared venv and subprocess helpers

REFERENCE = inmemory.REFERENCE
REPEATS = 7
CONFIGS = ("bare", "SimpleRetryMiddleware", "SmartRetryMiddleware", "PrometheusMiddleware")
TARGETS_US = {"SimpleRetryMiddleware": 5, "SmartRetryMiddleware": 5, "PrometheusMiddleware": 15}


async def noop() -> None:
    return None


_made: dict[str, Any] = {}


def middleware_of(impl: str, config: str) -> Any:
    """One instance per configuration and process (taskiq's metrics register globally)."""
    if config == "bare":
        return None
    if config not in _made:
        module = "taskq_middlewares" if impl == "taskq" else "taskiq.middlewares"
        _made[config] = getattr(importlib.import_module(module), config)()
    return _made[config]


async def seconds_for(impl: str, config: str, n: int) -> float:
    lib = importlib.import_module(impl)
    broker = lib.InMemoryBroker(max_stored_results=-1)
    middleware = middleware_of(impl, config)
    if middleware is not None:
        broker.add_middlewares(middleware)
    task = broker.task(noop, retry_on_error=True)
    await broker.startup()
    try:
        start = time.perf_counter()
        handles = [await task.kiq() for _ in range(n)]
        for handle in handles:
            result = await handle.wait_result(check_interval=0.001)
            if result.is_err:
                raise RuntimeError(f"task failed: {result.error!r}")
        return time.perf_counter() - start
    finally:
        await broker.shutdown()


def run_workload(impl: str, n: int) -> dict[str, float]:
    """The fastest time of each configuration, in seconds."""
    best = dict.fromkeys(CONFIGS, float("inf"))
    for _ in range(REPEATS):
        for config in CONFIGS:
            best[config] = min(best[config], asyncio.run(seconds_for(impl, config, n)))
    return best


def reference_interpreter() -> Path:
    python = inmemory.ensure_reference()
    probe = [python, "-c", "import prometheus_client"]
    if subprocess.run(probe, capture_output=True).returncode != 0:
        pip = [python, "-m", "pip", "install", "--quiet", "prometheus-client"]
        subprocess.run(pip, check=True, capture_output=True)
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run, for smoke tests")
    parser.add_argument("--impl", choices=["taskq", REFERENCE], help=argparse.SUPPRESS)
    parser.add_argument("-n", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.impl:  # a measuring subprocess
        print(json.dumps(run_workload(args.impl, args.n)))
        return

    tasks = 2_000 if args.quick else 20_000
    print(f"Python {platform.python_version()} ({platform.python_implementation()}) on")
    print(f"{platform.platform()}, {os.cpu_count()} CPUs")
    metrics_dir = tempfile.mkdtemp(prefix="bench-metrics-")
    env = {"PROMETHEUS_MULTIPROC_DIR": metrics_dir}  # both libraries in multiprocess mode
    ref_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | env
    interps = {
        "taskq": (sys.executable, inmemory.taskq_env() | env),
        REFERENCE: (reference_interpreter(), ref_env),
    }
    times: dict[str, dict[str, float]] = {}
    for impl, interp in interps.items():
        print(f"Measuring {impl} ...", flush=True)
        line = inmemory.run(
            interp, [str(BENCH / "middlewares.py"), "--impl", impl, "-n", str(tasks)]
        )
        times[impl] = json.loads(line)

    def overhead_us(impl: str, config: str) -> float:
        return (times[impl][config] - times[impl]["bare"]) / tasks * 1e6

    print()
    head = f"{'per task (us)':<24} {'taskq':>8} {REFERENCE:>8}  target"
    print(head, "-" * len(head), sep="\n")
    bare = {impl: times[impl]["bare"] / tasks * 1e6 for impl in times}
    print(f"{'bare receiver':<24} {bare['taskq']:>8.2f} {bare[REFERENCE]:>8.2f}")
    for config in CONFIGS[1:]:
        mine, ref = overhead_us("taskq", config), overhead_us(REFERENCE, config)
        target = TARGETS_US[config]
        verdict = "met" if mine <= target else "NOT MET"
        print(f"{'+ ' + config:<24} {mine:>8.2f} {ref:>8.2f}  taskq <= {target}: {verdict}")
    print()
    print(f"{tasks:,} no-op async tasks per run, fastest of {REPEATS} interleaved runs;")
    print("'+ X' rows: the time X adds per task over the bare receiver (noise is about 0.5 us).")


if __name__ == "__main__":
    main()
