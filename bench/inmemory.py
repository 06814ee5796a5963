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

The two libraries take turns: each measurement runs taskq, then taskiq, ``--rounds`` times
(the best run of each is kept), so that a machine busy with something else for a while
weighs on both.

Run from the repository root, with taskq installed in the current interpreter:

    python bench/inmemory.py           # full run (20,000 tasks, 1,000 round trips)
    python bench/inmemory.py --quick   # smoke test (2,000 tasks, 200 round trips)
    python bench/inmemory.py --pythons all             # one table per Python 3.10-3.13 found
    python bench/inmemory.py --pythons 3.10,3.13 --quick

Without ``--pythons`` only the current interpreter is measured; taskiq is then installed with
pip into ``bench/.venv-taskiq`` (created on first use, reused after). With ``--pythons``, each
interpreter (``pythonX.Y`` on the PATH, else a pyenv version) gets ``bench/.venv-taskq-X.Y``,
holding this repository's taskq-core and taskq-inmemory (editable), and
``bench/.venv-taskiq-X.Y``, holding taskiq; the current interpreter keeps its own environment
and ``bench/.venv-taskiq``. Both libraries of a table run on the same interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import os
import platform
import shutil
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
SUPPORTED_PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
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


def venv_python(venv: Path) -> Path:
    """The interpreter of the virtual environment ``venv``."""
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv(venv: Path, base: str, check: str, packages: list[str]) -> Path:
    """Create (or reuse) ``venv`` from interpreter ``base`` holding ``packages``.

    It is reused when ``check``, run by its interpreter, exits 0; else made again.
    """
    python = venv_python(venv)
    if (
        python.exists()
        and subprocess.run([python, "-c", check], capture_output=True).returncode == 0
    ):
        return python
    print(f"Installing {' '.join(packages)} into {venv.relative_to(ROOT)} ...", flush=True)
    subprocess.run([base, "-m", "venv", "--clear", venv], check=True)
    pip = [python, "-m", "pip", "install", "--quiet", *packages]
    proc = subprocess.run(pip, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"pip failed:\n{proc.stdout}{proc.stderr}")
    return python


def ensure_reference(base: str = sys.executable, venv: Path = VENV) -> Path:
    """Create (or reuse) the venv holding the reference implementation, for ``base``."""
    check = (
        "import importlib.metadata as m, sys; "
        f"sys.exit(m.version({REFERENCE!r}) != {REFERENCE_VERSION!r} "
        f"or sys.version_info[:2] != {version_of(base)})"
    )
    return ensure_venv(venv, base, check, [f"{REFERENCE}=={REFERENCE_VERSION}"])


def ensure_taskq(base: str, venv: Path) -> Path:
    """Create (or reuse) a venv of ``base`` with this repository's taskq (editable)."""
    check = f"import taskq_inmemory, sys; sys.exit(sys.version_info[:2] != {version_of(base)})"
    packages = ["-e", "packages/taskq-core", "-e", "packages/taskq-inmemory"]
    return ensure_venv(venv, base, check, packages)


def version_of(python: str) -> tuple[int, int] | None:
    """The (major, minor) version of the interpreter ``python``; None if it does not run."""
    if python == sys.executable:
        return sys.version_info[0], sys.version_info[1]
    code = "import sys; print(*sys.version_info[:2])"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` ("3.12"): a pyenv version, else ``python3.12`` on the PATH.

    pyenv's own versions come first: its shims on the PATH may not run that version.
    """
    if version == "{}.{}".format(*sys.version_info[:2]):
        return sys.executable
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    pyenv = shutil.which("pyenv")
    if pyenv:
        proc = subprocess.run([pyenv, "root"], capture_output=True, text=True)
        root = proc.stdout.strip() or root
    candidates = [str(p) for p in Path(root, "versions").glob(f"{version}.*/bin/python")]
    candidates.sort(key=lambda path: [int(x) if x.isdigit() else -1 for x in path.split(".")])
    candidates.reverse()  # the newest patch release first
    candidates.append(shutil.which(f"python{version}") or "")
    want = tuple(int(x) for x in version.split("."))
    return next((c for c in candidates if c and version_of(c) == want), None)


def interpreters(base: str) -> dict[str, tuple[Any, dict[str, str]]]:
    """The taskq and taskiq interpreters (with their environments) for interpreter ``base``."""
    ref_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if base == sys.executable:
        return {"taskq": (sys.executable, taskq_env()), REFERENCE: (ensure_reference(), ref_env)}
    tag = "{}.{}".format(*(version_of(base) or ("?", "?")))
    taskq = ensure_taskq(base, BENCH / f".venv-taskq-{tag}")
    reference = ensure_reference(base, BENCH / f".venv-{REFERENCE}-{tag}")
    return {"taskq": (taskq, ref_env), REFERENCE: (reference, ref_env)}


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

    python, env = interp
    # the warm-up writes the bytecode cache, as installing a package does, even where the
    # environment says not to (PYTHONDONTWRITEBYTECODE): else an editable install compiles
    # its sources at every import, and only an installed reference is measured warm
    writing = (python, {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"})

    def probe(stmt: str) -> tuple[float, float]:
        run(writing, ["-c", IMPORT_PROBE.format(stmt=stmt)])
        runs = [run(interp, ["-c", IMPORT_PROBE.format(stmt=stmt)]) for _ in range(IMPORT_RUNS)]
        seconds, mib = zip(*(map(float, line.split()) for line in runs), strict=True)
        return statistics.median(seconds), statistics.median(mib)

    seconds, loaded = probe(f"import {impl}")
    _, bare = probe("pass")
    return seconds, loaded - bare


# metric, key, higher is better, target: ("ratio", x): ratio >= x, ("max", x): taskq <= x
ROWS: list[tuple[str, str, bool, tuple[str, float] | None]] = [
    ("async no-op tasks/s", "async", True, ("ratio", 4)),
    ("sync no-op tasks/s", "sync", True, ("ratio", 2.5)),
    ("round trip p50 (us)", "p50", False, ("max", 25)),
    ("round trip p99 (us)", "p99", False, None),
    ("import time (s)", "import_s", False, ("max", 0.15)),
    ("import RSS above bare (MiB)", "import_mib", False, ("max", 25)),
]


def measure_all(
    interps: dict[str, tuple[Any, dict[str, str]]], sizes: tuple[int, int, int, int], rounds: int
) -> dict[str, dict[str, float]]:
    """Every metric of `ROWS` for both libraries, taking turns (best of ``rounds``)."""
    tasks, trips, ref_trips, warm = sizes
    res: dict[str, dict[str, float]] = {impl: {} for impl in interps}
    for _ in range(rounds):
        for what in ("async", "sync", "roundtrip"):
            for impl, interp in interps.items():
                mine = res[impl]
                if what != "roundtrip":
                    rate = measure(interp, impl, what, tasks, 0)["per_second"]
                    mine[what] = max(mine.get(what, 0.0), rate)
                elif impl == "taskq" or "p50" not in mine:  # taskiq's 0.2 s polls: once
                    rt = measure(interp, impl, what, trips if impl == "taskq" else ref_trips, warm)
                    if rt["p50"] < mine.get("p50", float("inf")):
                        mine.update(p50=rt["p50"], p99=rt["p99"], trips=rt["n"])
    for impl, interp in interps.items():
        res[impl]["import_s"], res[impl]["import_mib"] = import_cost(interp, impl)
    return res


def ratio_of(mine: float, ref: float, higher_better: bool) -> float:
    """How many times better taskq's figure is than the reference's."""
    num, den = (mine, ref) if higher_better else (ref, mine)
    return num / den if den > 0 else float("inf")


def print_table(res: dict[str, dict[str, float]]) -> None:
    """One interpreter's table: each metric for both libraries, the ratio, the target."""
    q, r = res["taskq"], res[REFERENCE]
    head = f"{'metric':<28} {'taskq':>12} {REFERENCE:>12} {'ratio':>9}  target"
    print(head, "-" * len(head), sep="\n")
    for name, key, higher_better, target in ROWS:
        mine, ref = q[key], r[key]
        ratio = ratio_of(mine, ref, higher_better)
        fmt = ".0f" if mine >= 100 else ".3f" if mine < 1 else ".1f"
        line = f"{name:<28} {mine:>12{fmt}} {ref:>12{fmt}} {ratio:>8.2f}x"
        if target is not None:
            kind, bound = target
            met = ratio >= bound if kind == "ratio" else mine <= bound
            goal = f"ratio >= {bound}" if kind == "ratio" else f"taskq <= {bound}"
            line += f"  {goal}: {'met' if met else 'NOT MET'}"
        print(line)


def print_summary(results: dict[str, dict[str, dict[str, float]]]) -> None:
    """The throughput ratios and taskq's round trip p50 of every interpreter measured."""
    head = f"{'Python':<10} {'async ratio':>12} {'sync ratio':>11} {'p50 (us)':>9}"
    print(head, "-" * len(head), sep="\n")
    for version, res in results.items():
        q, r = res["taskq"], res[REFERENCE]
        asyncs, syncs = (ratio_of(q[k], r[k], True) for k in ("async", "sync"))
        print(f"{version:<10} {asyncs:>11.2f}x {syncs:>10.2f}x {q['p50']:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run, for smoke tests")
    parser.add_argument(
        "--pythons",
        help='interpreters to measure, e.g. "3.10,3.13", or "all" (3.10-3.13, those found); '
        "default: the current one",
    )
    parser.add_argument(
        "--rounds", type=int, help="turns each library takes per measurement (default 2, quick 1)"
    )
    parser.add_argument("--impl", choices=["taskq", REFERENCE], help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=["async", "sync", "roundtrip"], help=argparse.SUPPRESS)
    parser.add_argument("-n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.impl:  # a measuring subprocess
        print(json.dumps(run_workload(args.impl, args.measure, args.n, args.warmup)))
        return

    sizes = (2_000, 200, 20, 10) if args.quick else (20_000, 1_000, 100, 50)
    rounds = args.rounds or (1 if args.quick else 2)
    bases = select_pythons(args.pythons)
    print(f"{platform.platform()}, {os.cpu_count()} CPUs")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for version, base in bases.items():
        interps = interpreters(base)
        print(f"\nPython {version} ({base}): measuring taskq and {REFERENCE} ...", flush=True)
        results[version] = res = measure_all(interps, sizes, rounds)
        print()
        print_table(res)
    tasks, _, _, warm = sizes
    first = next(iter(results.values()))
    q, r = first["taskq"], first[REFERENCE]
    print()
    print(f"Throughput: {tasks:,} tasks, best of {THROUGHPUT_REPEATS} runs in each of {rounds}")
    print(f"turn(s), max_stored_results=-1, check_interval={THROUGHPUT_POLL} (taskq's in-memory")
    print("backend notifies instead).")
    counts = f"taskq {q['trips']:,.0f} (best p50 of {rounds}), {REFERENCE} {r['trips']:,.0f}"
    print(f"Round trips at defaults after {warm} warm-up: {counts} (taskiq polls every 0.2 s).")
    print(f"Import: median of {IMPORT_RUNS} fresh interpreters; ratio > 1 means taskq is better.")
    if len(results) > 1:
        print()
        print_summary(results)


def select_pythons(spec: str | None) -> dict[str, str]:
    """The interpreters ``--pythons`` names, by version ("3.12": path)."""
    if spec is None:
        return {platform.python_version(): sys.executable}
    wanted = SUPPORTED_PYTHONS if spec == "all" else [v.strip() for v in spec.split(",")]
    found = {version: find_python(version) for version in wanted}
    missing = [version for version, path in found.items() if path is None]
    if missing and spec != "all":
        raise SystemExit(f"no interpreter found for Python {', '.join(missing)}")
    if missing:
        print(f"Skipping Python {', '.join(missing)}: not found")
    return {version: path for version, path in found.items() if path is not None}


if __name__ == "__main__":
    main()
