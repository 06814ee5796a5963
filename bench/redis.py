"""Benchmark taskq's RedisStreamBroker against taskiq-redis's and dramatiq's Redis brokers.

All three run the same program, ``bench/redis_apps/app.py``, against the same Redis server
(``TASKQ_REDIS_URL``, default ``redis://127.0.0.1:6379/0``), each on a queue of its own run,
with one worker process started by each library's own command (``python -m taskq.cli worker``,
``python -m taskiq worker``, ``python -m dramatiq --processes 1``) at default settings
otherwise. The task is a no-op that counts. For 5,000 and 50,000 tasks, two measurements:

1. together: the worker runs, then a client process kicks the tasks one after another
   (``await task.kiq()``; ``actor.send()`` for dramatiq); the rate is the tasks divided by
   the time from the first kick to the last task run;
2. drain: the client fills the queue while no worker runs, then the worker starts; the rate
   is the tasks run per second between the first and the last task the worker ran.

Then a third, with no worker running: bulk, 100,000 tasks sent the fastest way each library
offers: taskq's bulk send in batches of 1,000; taskiq, which has none, one ``kiq()`` after
another (1,000 at once through ``asyncio.gather`` is slower: its connection pool serialises
them); dramatiq is left out. The rate is the tasks divided by the time the client took to send
them all into Redis, building the messages included.

Each figure is one run (fresh processes, fresh queue); the ratios compare taskq with each of
the others in the same run. Run from the repository root, with taskq and taskq-redis installed
in the current interpreter:

    python bench/redis.py           # 5,000 and 50,000 tasks (a few minutes)
    python bench/redis.py --quick   # 2,000 tasks, bulk 10,000 (smoke test)

taskiq 0.13.0, taskiq-redis and dramatiq[redis] are installed with pip into
``bench/.venv-taskiq`` (see ``bench/inmemory.py``). Linux only (it relies on a monotonic clock
shared by processes).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from inmemory import ROOT, VENV, ensure_reference, taskq_env

APP = "bench.redis_apps.app"
LIBS = ("taskq", "taskiq", "dramatiq")
REFERENCE_PACKAGES = ("taskiq-redis", "dramatiq[redis]")
URL = os.environ.get("TASKQ_REDIS_URL") or "redis://127.0.0.1:6379/0"
READY_TIMEOUT_S = 60.0
SETTLE_S = 1.0  # after a worker process imported the app: its consumer connects
STOP_TIMEOUT_S = 30.0


def ensure_reference_redis() -> Path:
    """The reference venv's interpreter, with taskiq-redis and dramatiq installed."""
    python = ensure_reference()
    probe = "import taskiq_redis, dramatiq.brokers.redis"
    # from the repository root: in bench/, ``import redis`` would find this file
    if subprocess.run([python, "-c", probe], capture_output=True, cwd=ROOT).returncode != 0:
        print(f"Installing {', '.join(REFERENCE_PACKAGES)} into {VENV.relative_to(ROOT)} ...")
        pip = [python, "-m", "pip", "install", "--quiet", "taskiq==0.13.0", *REFERENCE_PACKAGES]
        proc = subprocess.run(pip, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"pip failed:\n{proc.stdout}{proc.stderr}")
    return python


def worker_command(lib: str, python: Path | str) -> list[str]:
    if lib == "taskq":
        return [str(python), "-m", "taskq.cli", "worker", f"{APP}:broker", "--workers", "1"]
    if lib == "taskiq":
        return [str(python), "-m", "taskiq", "worker", f"{APP}:broker", "--workers", "1"]
    return [str(python), "-m", "dramatiq", APP, "--processes", "1"]


class Run:
    """One measurement: a queue, a directory for the app's files, the processes."""

    def __init__(self, lib: str, python: Path | str, env: dict[str, str], tasks: int) -> None:
        self.lib, self.python, self.tasks = lib, python, tasks
        self.out = Path(tempfile.mkdtemp(prefix="redis-bench-"))
        self.queue = f"bench-{uuid.uuid4().hex}"
        self.env = {
            **env,
            "REDIS_BENCH_LIB": lib,
            "REDIS_BENCH_URL": URL,
            "REDIS_BENCH_QUEUE": self.queue,
            "REDIS_BENCH_COUNT": str(tasks),
            "REDIS_BENCH_DIR": str(self.out),
        }
        self.log = open(self.out / "log", "w")  # noqa: SIM115 - closed in cleanup

    def start_worker(self) -> subprocess.Popen[bytes]:
        before = len(list(self.out.glob("ready-*")))
        worker = subprocess.Popen(
            worker_command(self.lib, self.python),
            env={**self.env, "REDIS_BENCH_ROLE": "worker"},
            cwd=ROOT,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(list(self.out.glob("ready-*"))) <= before:
            if time.monotonic() > deadline or worker.poll() is not None:
                self.fail("the worker did not start")
            time.sleep(0.05)
        time.sleep(SETTLE_S)
        return worker

    def kick(self, *options: str) -> tuple[float, float]:
        client = subprocess.run(
            [str(self.python), "-m", APP, str(self.tasks), *options],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60 + self.tasks / 100,
            check=False,
        )
        if client.returncode != 0:
            self.fail(f"the client failed:\n{client.stderr[-2000:]}")
        t0, t1 = map(float, client.stdout.split())
        return t0, t1

    def wait_for(self, name: str) -> float:
        path = self.out / name
        deadline = time.monotonic() + 60 + self.tasks / 200
        while not path.exists() or not path.read_text():
            if time.monotonic() > deadline:
                self.fail(f"the worker did not run all {self.tasks:,} tasks in time")
            time.sleep(0.05)
        return float(path.read_text())

    def fail(self, why: str) -> None:
        self.log.flush()
        log = (self.out / "log").read_text()[-3000:]
        raise SystemExit(f"{self.lib}: {why} (files in {self.out})\n{log}")

    def cleanup(self) -> None:
        """Delete the run's keys (in a child: ``import redis`` here would find this file)."""
        self.log.close()
        script = (
            "import redis, sys\n"
            "with redis.Redis.from_url(sys.argv[1]) as client:\n"
            "    keys = list(client.scan_iter(match=f'*{sys.argv[2]}*', count=1000))\n"
            "    if keys:\n"
            "        client.delete(*keys)\n"
        )
        subprocess.run([sys.executable, "-c", script, URL, self.queue], cwd=ROOT, check=True)
        shutil.rmtree(self.out, ignore_errors=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def together(lib: str, python: Path | str, env: dict[str, str], tasks: int) -> float:
    """Tasks/s with the worker running while the client kicks."""
    run = Run(lib, python, env, tasks)
    worker = run.start_worker()
    try:
        t0, _ = run.kick()
        last = run.wait_for("last")
    finally:
        stop(worker)
        run.cleanup()
    return tasks / (last - t0)


def drain(lib: str, python: Path | str, env: dict[str, str], tasks: int) -> float:
    """Tasks/s of a worker emptying a queue filled before it started."""
    run = Run(lib, python, env, tasks)
    stop(run.start_worker())  # a first start creates the queue's consumer group, if any
    worker = None
    try:
        run.kick()
        worker = run.start_worker()
        first, last = run.wait_for("first"), run.wait_for("last")
    finally:
        if worker is not None:
            stop(worker)
        run.cleanup()
    return (tasks - 1) / (last - first)


def bulk(lib: str, python: Path | str, env: dict[str, str], tasks: int) -> float:
    """Tasks/s sent into Redis in batches, no worker running."""
    run = Run(lib, python, env, tasks)
    try:
        t0, t1 = run.kick("--bulk")
    finally:
        run.cleanup()
    return tasks / (t1 - t0)


def report(label: str, rates: dict[str, float]) -> None:
    """Print one row: each library's rate and taskq's ratio to each of the others."""
    others = [lib for lib in rates if lib != "taskq" and rates[lib]]
    ratios = ", ".join(f"{rates['taskq'] / rates[lib]:.2f}x {lib}" for lib in others)
    figures = "  ".join(
        f"{lib} {rates[lib]:>7,.0f}/s" if lib in rates else f"{lib} {'-':>7}  " for lib in LIBS
    )
    print(f"{label}: {figures}  | taskq = {ratios}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 tasks only")
    quick = parser.parse_args().quick
    sizes = [2_000] if quick else [5_000, 50_000]
    bulk_tasks = 10_000 if quick else 100_000
    reference = ensure_reference_redis()
    interpreters = {"taskq": (sys.executable, taskq_env())}
    for lib in LIBS[1:]:
        interpreters[lib] = (str(reference), dict(os.environ))
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, Redis at {URL}")
    print(f"load average before: {os.getloadavg()[0]:.2f}\n")
    for mode, measure in (("together", together), ("drain", drain)):
        for tasks in sizes:
            rates = {}
            for lib in LIBS:
                python, env = interpreters[lib]
                rates[lib] = measure(lib, python, env, tasks)
            report(f"{mode:<8} {tasks:>7,} tasks", rates)
    rates = {lib: bulk(lib, *interpreters[lib], bulk_tasks) for lib in LIBS[:2]}
    report(f"{'bulk':<8} {bulk_tasks:>7,} tasks", rates)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
