"""Benchmark taskq's InMemoryBroker against the reference implementation, taskiq 0.13.0.

Measures, for both libraries, each in a fresh subprocess running the same code below:

1. async throughput: kiq N no-op ``async def`` tasks, then await every result in order
   (time from the first kiq to the last result; best of 3 runs, each with a new broker);
2. sync throughput: the same with a no-op ``def`` task (run in the broker's thread pool);
3. round-trip latency: sequential ``await (await task.kiq()).wait_result()`` at default
   broker and ``wait_result`` settings (p50 / p99 after a warm-up);
4. ``import`` wall time in a fresh interpreter (median of 5) and the peak RSS it adds above
   a bare interpreter. On Linux the peak is read from ``VmHWM`` in ``/proc/self/status``:
   ``ru_maxrss`` (also in KiB there) would do, except that a child's ``ru_maxrss`` starts at
   the RSS of the process that spawned it (this one), hiding a smaller import.

Both brokers get the same constructor arguments: ``max_stored_results=-1`` (keep every
result; taskiq 0.13.0 supports -1 too) for 1-2, defaults for 3. taskiq's ``wait_result``
polls the backend; 1-2 pass ``check_interval=0.001`` to both so that polling does not
dominate, 3 keeps the default 0.2 s, as users get it (taskq's in-memory backend wakes
waiters and ignores the interval). With 0.2 s per round trip, taskiq runs 100 of them.

Run from the repository root, with taskq installed in the current interpreter:

    python bench/inmemory.py           # full run (20,000 tasks, 1,000 round trips)
    python bench/inmemory.py --quick   # smoke test (2,000 tasks, 200 round trips)

taskiq is installed with pip into ``bench/.venv-taskiq`` (created on first use, reused after).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv-taskiq"
REFERENCE, REFERENCE_VERSION = "taskiq", "0.13.0"
THROUGHPUT_BROKER_KWARGS: dict[str, Any] = {"max_stored_results": -1}
THROUGHPUT_REPEATS = 3  # fresh broker each time; the best run is reported
THROUGHPUT_POLL = 0.001  # check_interval for 1-2 (ignored by taskq's in-memory backend)
IMPORT_RUNS = 5
IMPORT_PROBE = """\
import os, resource, sys, time
t = time.perf_counter()
{stmt}
t = time.perf_counter() - t
if os.path.exists("/proc/self/status"):  # Linux: VmHWM, peak RSS of this process, in KiB
    kib = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:"))
else:  # ru_maxrss: bytes on macOS
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(t, kib / 1024)
"""

# -- workload: runs in a subprocess, parametrized only by the library ---------------------


async def noop_async() -> None:
    return None


def noop_sync() -> None:
    return None


async def throughput(lib: Any, func: Any, n: int) -> float:
    broker = lib.InMemoryBroker(**THROUGHPUT_BROKER_KWARGS)
    task = broker.task(func)
    await broker.startup()
    try:
        start = time.perf_counter()
        handles = [await task.kiq() for _ in range(n)]
        for handle in handles:
            result = await handle.wait_result(check_interval=THROUGHPUT_POLL)
            if result.is_err:
                raise RuntimeError(f"task failed: {result.error!r}")
        elapsed = time.perf_counter() - start
    finally:
        await broker.shutdown()
    return n / elapsed


async def round_trip(lib: Any, n: int, warmup: int) -> dict[str, float]:
    broker = lib.InMemoryBroker()
    task = broker.task(noop_async)
    await broker.startup()
    samples: list[float] = []
    try:
        for i in range(warmup + n):
            start = time.perf_counter_ns()
            handle = await task.kiq()
            result = await handle.wait_result()
            elapsed_us = (time.perf_counter_ns() - start) / 1000
            if result.is_err:
                raise RuntimeError(f"task failed: {result.error!r}")
            if i >= warmup:
                samples.append(elapsed_us)
    finally:
        await broker.shutdown()
    samples.sort()
    return {"p50": statistics.median(samples), "p99": samples[round(0.99 * (n - 1))], "n": n}


def run_workload(impl: str, measure: str, n: int, warmup: int) -> dict[str, Any]:
    lib = importlib.import_module(impl)
    if measure == "roundtrip":
        return asyncio.run(round_trip(lib, n, warmup))
    func = noop_async if measure == "async" else noop_sync
    runs = [asyncio.run(throughput(lib, func, n)) for _ in range(THROUGHPUT_REPEATS)]
    return {"per_second": max(runs)}


# -- orchestration ------------------------------------------------------------------------


def ensure_reference() -> Path:
    """Create (or reuse) the venv holding the reference implementation."""
    python = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    check = (
        "import importlib.metadata as m, sys; "
        f"sys.exit(m.version({REFERENCE!r}) != {REFERENCE_VERSION!r} "
        f"or sys.version_info[:2] != {tuple(sys.version_info[:2])})"
    )
    if (
        python.exists()
        and subprocess.run([python, "-c", check], capture_output=True).returncode == 0
    ):
        return python
    print(f"Installing {REFERENCE}=={REFERENCE_VERSION} into {VENV.relative_to(ROOT)} ...")
    subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
    pip = [python, "-m", "pip", "install", "--quiet", f"{REFERENCE}=={REFERENCE_VERSION}"]
    proc = subprocess.run(pip, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pip failed:\n{proc.stdout}{proc.stderr}")
    return python


def taskq_env() -> dict[str, str]:
    """Environment for taskq subprocesses: the repo's sources if taskq is not installed."""
    env = dict(os.environ)
    if importlib.util.find_spec("taskq") is None:
        srcs = [str(p) for p in sorted((ROOT / "packages").glob("*/src"))]
        env["PYTHONPATH"] = os.pathsep.join([*srcs, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run(interp: tuple[Any, dict[str, str]], args: list[str]) -> str:
    python, env = interp
    proc = subprocess.run([python, *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{python} {' '.join(args[:4])} failed:\n{proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]


def measure(interp: tuple[Any, dict[str, str]], impl: str, what: str, n: int, warm: int) -> Any:
    args = [
        str(BENCH / "inmemory.py"),
        "--impl",
        impl,
        "--measure",
        what,
        "-n",
        str(n),
        "--warmup",
        str(warm),
    ]
    return json.loads(run(interp, args))


def import_cost(interp: tuple[Any, dict[str, str]], impl: str) -> tuple[float, float]:
    """Median import seconds and median peak-RSS MiB above a bare interpreter."""

    def probe(stmt: str) -> tuple[float, float]:
        run(interp, ["-c", IMPORT_PROBE.format(stmt=stmt)])  # warm the bytecode cache
        runs = [run(interp, ["-c", IMPORT_PROBE.format(stmt=stmt)]) for _ in range(IMPORT_RUNS)]
        seconds, mib = zip(*(map(float, line.split()) for line in runs), strict=True)
        return statistics.median(seconds), statistics.median(mib)

    seconds, loaded = probe(f"import {impl}")
    _, bare = probe("pass")
    return seconds, loaded - bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run, for smoke tests")
    parser.add_argument("--impl", choices=["taskq", REFERENCE], help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=["async", "sync", "roundtrip"], help=argparse.SUPPRESS)
    parser.add_argument("-n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.impl:  # a measuring subprocess
        print(json.dumps(run_workload(args.impl, args.measure, args.n, args.warmup)))
        return

    tasks, trips, ref_trips, warm = (2_000, 200, 20, 10) if args.quick else (20_000, 1_000, 100, 50)
    print(f"Python {platform.python_version()} ({platform.python_implementation()}) on")
    print(f"{platform.platform()}, {os.cpu_count()} CPUs")
    ref_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    interps = {"taskq": (sys.executable, taskq_env()), REFERENCE: (ensure_reference(), ref_env)}
    res: dict[str, dict[str, Any]] = {}
    for impl, interp in interps.items():
        print(f"Measuring {impl} ...", flush=True)
        res[impl] = {
            "async": measure(interp, impl, "async", tasks, 0)["per_second"],
            "sync": measure(interp, impl, "sync", tasks, 0)["per_second"],
            "rt": measure(interp, impl, "roundtrip", trips if impl == "taskq" else ref_trips, warm),
            "import": import_cost(interp, impl),
        }
    q, r = res["taskq"], res[REFERENCE]
    # metric, taskq, taskiq, higher is better, target: ratio >= x or taskq <= x
    rows = [
        ("async no-op tasks/s", q["async"], r["async"], True, ("ratio", 3)),
        ("sync no-op tasks/s", q["sync"], r["sync"], True, ("ratio", 2)),
        ("round trip p50 (us)", q["rt"]["p50"], r["rt"]["p50"], False, ("max", 50)),
        ("round trip p99 (us)", q["rt"]["p99"], r["rt"]["p99"], False, None),
        ("import time (s)", q["import"][0], r["import"][0], False, ("max", 0.15)),
        ("import RSS above bare (MiB)", q["import"][1], r["import"][1], False, ("max", 25)),
    ]
    print()
    head = f"{'metric':<28} {'taskq':>12} {REFERENCE:>12} {'ratio':>9}  target"
    print(head, "-" * len(head), sep="\n")
    for name, mine, ref, higher_better, target in rows:
        num, den = (mine, ref) if higher_better else (ref, mine)
        ratio = num / den if den > 0 else float("inf")
        fmt = ".0f" if mine >= 100 else ".3f" if mine < 1 else ".1f"
        line = f"{name:<28} {mine:>12{fmt}} {ref:>12{fmt}} {ratio:>8.2f}x"
        if target is not None:
            kind, bound = target
            met = ratio >= bound if kind == "ratio" else mine <= bound
            goal = f"ratio >= {bound}" if kind == "ratio" else f"taskq <= {bound}"
            line += f"  {goal}: {'met' if met else 'NOT MET'}"
        print(line)
    print()
    print(f"Throughput: {tasks:,} tasks, best of {THROUGHPUT_REPEATS} runs, max_stored_results=-1,")
    print(f"check_interval={THROUGHPUT_POLL} (taskq's in-memory backend notifies instead).")
    counts = f"taskq {q['rt']['n']:,}, {REFERENCE} {r['rt']['n']:,}"
    print(f"Round trips at defaults after {warm} warm-up: {counts} (taskiq polls every 0.2 s).")
    print(f"Import: median of {IMPORT_RUNS} fresh interpreters; ratio > 1 means taskq is better.")


if __name__ == "__main__":
    main()
