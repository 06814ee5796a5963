"""Benchmark taskq's AmqpBroker against taskiq-aio-pika, dramatiq and Celery on RabbitMQ.

All run the same program, ``bench/amqp_apps/app.py``, against the same RabbitMQ server
(``TASKQ_AMQP_URL``, default ``amqp://guest:guest@127.0.0.1:5672/``), each on a classic queue
of its own run (taskiq-aio-pika's default, a quorum queue, is overridden; taskq and
taskiq-aio-pika store it with the server's default version unless ``--queue-version`` gives
one to both; dramatiq and Celery get the server's default), with one worker
process started by each library's own command (``python -m taskq.cli worker``, ``python -m
taskiq worker``, ``python -m dramatiq --processes 1``, ``celery worker --concurrency 1``) at
default settings otherwise. The task is a no-op that counts. For 5,000
and 50,000 tasks, two measurements:

1. together: the worker runs, then a client process sends the tasks one after another
   (``await task.kiq()``; ``actor.send()`` for dramatiq, ``task.delay()`` for Celery); the
   rate is the tasks divided by the time from the first send to the last task run;
2. drain: the client fills the queue while no worker runs, then the worker starts; the rate
   is the tasks run per second between the first and the last task the worker ran.

3. together, batches (taskq only): as 1., the client sending ``BATCH`` tasks per
   ``kiq_many`` chunk (one publisher-confirm wait per batch instead of one per task); its ratios
   compare it with the others' one-by-one "together" figures of the same run.

Each figure is one run (fresh processes, fresh queue); the ratios compare taskq with each of
the others in the same run. Run from the repository root, with taskq and taskq-amqp installed
in the current interpreter:

    python bench/amqp.py                  # 5,000 and 50,000 tasks (several minutes)
    python bench/amqp.py --quick          # 2,000 tasks (smoke test)
    python bench/amqp.py --libs taskq,taskiq
    python bench/amqp.py --sizes 5000 --modes together --queue-version 1
    python bench/amqp.py --libs taskq,taskiq,aiormq --modes together   # with the floor

``aiormq`` (only when asked) is the floor of "together": bare aiormq on both ends
(``bench/amqp_apps/floor.py``), publishing one message after another with confirms to a
consumer that acknowledges each delivery as it arrives; no task library can beat it there.

taskiq 0.13.0, taskiq-aio-pika, dramatiq[rabbitmq] and celery are installed with pip into
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

APP = "bench.amqp_apps.app"
FLOOR = "bench.amqp_apps.floor"
#: ``aiormq``, bare aiormq on both ends (``bench/amqp_apps/floor.py``), runs only when asked.
LIBS = ("taskq", "taskiq", "dramatiq", "celery", "aiormq")
DEFAULT_LIBS = LIBS[:4]
REFERENCE_PACKAGES = ("taskiq-aio-pika", "dramatiq[rabbitmq]", "celery")
URL = os.environ.get("TASKQ_AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/"
READY_TIMEOUT_S = 60.0
SETTLE_S = 1.0  # after a worker process imported the app: its consumer connects
STOP_TIMEOUT_S = 30.0
#: Tasks per ``kiq_many`` chunk (one ``kick_many``) of the "batches" row.
BATCH = 1000
#: The queues and exchanges a run may leave, by suffix of its queue name.
QUEUE_SUFFIXES = ("", ".dead-letters", ".dead_letter", ".delay", ".DQ", ".XQ")
CLEANUP = """
import asyncio, sys, aiormq
async def main(url, name):
    connection = await aiormq.connect(url)
    channel = await connection.channel()
    for suffix in {suffixes!r}:
        await channel.queue_delete(name + suffix)
    await channel.exchange_delete(name)
    await connection.close()
asyncio.run(main(*sys.argv[1:]))
"""


def ensure_reference_amqp() -> Path:
    """The reference venv's interpreter, with taskiq-aio-pika, dramatiq and Celery installed."""
    python = ensure_reference()
    probe = "import taskiq_aio_pika, dramatiq.brokers.rabbitmq, celery"
    if subprocess.run([python, "-c", probe], capture_output=True).returncode != 0:
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
    if lib == "celery":
        return [str(python), "-m", "celery", "-A", f"{APP}:app", "worker", "--concurrency", "1"]
    if lib == "aiormq":
        return [str(python), "-m", FLOOR, "consume"]
    return [str(python), "-m", "dramatiq", APP, "--processes", "1"]


class Run:
    """One measurement: a queue, a directory for the app's files, the processes."""

    def __init__(
        self, lib: str, python: Path | str, env: dict[str, str], tasks: int, batch: int = 0
    ) -> None:
        self.lib, self.python, self.tasks = lib, python, tasks
        self.out = Path(tempfile.mkdtemp(prefix="amqp-bench-"))
        self.queue = f"bench-{uuid.uuid4().hex}"
        self.env = {
            **env,
            "AMQP_BENCH_LIB": lib,
            "AMQP_BENCH_URL": URL,
            "AMQP_BENCH_QUEUE": self.queue,
            "AMQP_BENCH_COUNT": str(tasks),
            "AMQP_BENCH_DIR": str(self.out),
            "AMQP_BENCH_BATCH": str(batch or ""),
        }
        self.log = open(self.out / "log", "w")  # noqa: SIM115 - closed in cleanup

    def start_worker(self) -> subprocess.Popen[bytes]:
        before = len(list(self.out.glob("ready-*")))
        worker = subprocess.Popen(
            worker_command(self.lib, self.python),
            env={**self.env, "AMQP_BENCH_ROLE": "worker"},
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

    def kick(self) -> tuple[float, float]:
        client = subprocess.run(
            [str(self.python), "-m", FLOOR if self.lib == "aiormq" else APP, str(self.tasks)],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60 + self.tasks / 50,
            check=False,
        )
        if client.returncode != 0:
            self.fail(f"the client failed:\n{client.stderr[-2000:]}")
        t0, t1 = map(float, client.stdout.split()[-2:])
        return t0, t1

    def wait_for(self, name: str) -> float:
        path = self.out / name
        deadline = time.monotonic() + 60 + self.tasks / 100
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
        """Delete the run's queues and exchange (with taskq's interpreter, which has aiormq)."""
        self.log.close()
        script = CLEANUP.format(suffixes=QUEUE_SUFFIXES)
        subprocess.run([sys.executable, "-c", script, URL, self.queue], cwd=ROOT, check=False)
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


def together(
    lib: str, python: Path | str, env: dict[str, str], tasks: int, batch: int = 0
) -> float:
    """Tasks/s with the worker running while the client sends (``batch`` per kick_many)."""
    run = Run(lib, python, env, tasks, batch)
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
    stop(run.start_worker())  # a first start declares the queue where the client does not
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 tasks only")
    parser.add_argument(
        "--libs",
        default=",".join(DEFAULT_LIBS),
        help="which to run (taskq first); aiormq: bare aiormq client and consumer, the floor",
    )
    parser.add_argument("--sizes", help="task counts, comma-separated (default 5000,50000)")
    parser.add_argument("--modes", default="together,drain", help="which measurements")
    parser.add_argument(
        "--queue-version",
        type=int,
        choices=(1, 2),
        help="x-queue-version of taskq's and taskiq-aio-pika's classic queues (default: the "
        "server's)",
    )
    args = parser.parse_args()
    libs = [lib for lib in LIBS if lib in args.libs.split(",")]
    sizes = [2_000] if args.quick else [5_000, 50_000]
    if args.sizes:
        sizes = [int(size) for size in args.sizes.split(",")]
    reference = ensure_reference_amqp()
    version = {"AMQP_BENCH_QUEUE_VERSION": str(args.queue_version or "")}
    interpreters = {"taskq": (sys.executable, {**taskq_env(), **version})}
    for lib in libs[1:]:
        interpreters[lib] = (str(reference), {**os.environ, **version})
    if "aiormq" in libs:  # taskq's interpreter has aiormq
        interpreters["aiormq"] = (sys.executable, taskq_env())
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, RabbitMQ at {URL}")
    print(
        "taskq's and taskiq-aio-pika's classic queues: x-queue-version "
        + (str(args.queue_version) if args.queue_version else "of the server's default")
    )
    print(f"load average before: {os.getloadavg()[0]:.2f}\n")
    modes = [(m, f) for m, f in (("together", together), ("drain", drain)) if m in args.modes]
    for mode, measure in modes:
        for tasks in sizes:
            rates = {}
            for lib in libs:
                python, env = interpreters[lib]
                rates[lib] = measure(lib, python, env, tasks)
            ratios = ", ".join(
                f"{rates['taskq'] / rates[lib]:.2f}x {lib}" for lib in libs[1:] if rates[lib]
            )
            figures = "  ".join(f"{lib} {rates[lib]:>7,.0f}/s" for lib in libs)
            print(f"{mode:<8} {tasks:>6,} tasks: {figures}  | taskq = {ratios}", flush=True)
            if mode == "together" and libs[0] == "taskq":
                python, env = interpreters["taskq"]
                bulk = together("taskq", python, env, tasks, BATCH)
                ratios = ", ".join(f"{bulk / rates[lib]:.2f}x {lib}" for lib in libs[1:])
                print(f"{'batches':<8} {tasks:>6,} tasks: taskq {bulk:>7,.0f}/s  | = {ratios}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
