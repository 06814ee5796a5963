"""Benchmark taskq's ZeroMQBroker against the reference implementation, taskiq 0.13.0.

Both libraries run the same program, ``bench/zmq_apps/app.py``: a client process that kicks
no-op tasks and worker processes started by each library's own command
(``python -m taskq.cli worker`` / ``python -m taskiq worker``, ``--workers N``), connected over
loopback (127.0.0.1, a free port), default broker and worker settings otherwise. Measures:

1. processed tasks/s with 1 and with 2 worker processes, 20,000 no-op tasks, the fastest of 3
   runs (each with fresh processes): unique tasks run divided by the time from the first
   ``kiq`` to the last task any worker ran (workers record the time of each task; the client
   starts kicking once every worker has answered a ping). taskiq's
   broker is PUB/SUB: every worker gets every message, so with 2 workers its duplicate
   executions are reported too, and a task counts once however many times it ran. taskq must
   run each task exactly once (checked from the task numbers each worker records);
2. delivered fraction at 100,000 tasks with 1 worker: the client kicks as fast as it can, then
   the run ends when every task ran or no worker ran anything for 3 s; delivered = unique
   tasks run / tasks kicked. A broker that drops messages never finishes: its runs end on the
   idle timeout, and its rate is taken over the time until its last task;
3. worker peak RSS: ``VmHWM`` of the worker processes (not of the process manager), read from
   ``/proc/<pid>/status`` after the 20,000-task runs, before the workers are stopped;
4. client CPU per kick: the CPU time (``time.process_time``: user + system) the client process
   spent from the first ``kiq`` to the return of the last, divided by the tasks, in the
   20,000-task 1-worker runs (the lowest of them): what one ``await task.kiq(...)`` costs the
   sender, independent of how busy the machine is.

Run from the repository root, with taskq and taskq-zmq installed in the current interpreter:

    python bench/zmq.py           # full run (20,000 tasks; 100,000 for the delivery check)
    python bench/zmq.py --quick   # smoke test (2,000 tasks; 10,000 for the delivery check)

taskiq and pyzmq are installed with pip into ``bench/.venv-taskiq`` (see ``bench/inmemory.py``).
Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import array
import os
import platform
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from inmemory import REFERENCE, ROOT, VENV, ensure_reference, taskq_env

APP = "bench.zmq_apps.app"
IDLE = 3.0  # seconds without progress after the last kick that end a run
STOP_TIMEOUT = 15.0  # seconds a stopped process gets before SIGKILL
READY_TIMEOUT = 60.0  # seconds for the workers to answer the client's ping
LOGS = ("client.log", "workers.log")
REPEATS = 3  # runs per library of each 20,000-task measurement; the fastest is reported


@dataclass
class Run:
    lib: str
    workers: int
    tasks: int
    t0: float = 0.0  # monotonic time of the first kick
    kick_s: float = 0.0  # time taken by the kicks
    kick_cpu_s: float = 0.0  # CPU time (user + system) the client process spent on the kicks
    end: float = 0.0  # monotonic time of the last task run by any worker
    per_worker: list[int] = field(default_factory=list)  # executions per worker process
    unique: int = 0
    ending: str = ""  # "all ran", "went idle" (no progress for IDLE s) or "timed out"
    rss_mib: float = 0.0  # largest VmHWM among the worker processes

    @property
    def executions(self) -> int:
        return sum(self.per_worker)

    @property
    def duplicates(self) -> int:
        return self.executions - self.unique

    @property
    def kick_cpu_us(self) -> float:
        """Client CPU time per kick, in microseconds."""
        return 1e6 * self.kick_cpu_s / self.tasks

    @property
    def rate(self) -> float:
        return self.unique / (self.end - self.t0) if self.end > self.t0 else 0.0

    def describe(self) -> str:
        runs = " + ".join(f"{c:,}" for c in self.per_worker) or "0"
        return (
            f"{self.lib:<7} {self.workers}w {self.tasks:>7,} kicked: {self.unique:>7,} ran "
            f"({runs} runs), {self.ending}; kicks {self.kick_s:.2f} s "
            f"({self.kick_cpu_us:.1f} us CPU each), "
            f"last task {self.end - self.t0:.2f} s"
        )


def ensure_reference_zmq() -> Path:
    """The reference venv's interpreter, with pyzmq installed next to taskiq."""
    python = ensure_reference()
    if subprocess.run([python, "-c", "import zmq"], capture_output=True).returncode != 0:
        print(f"Installing pyzmq into {VENV.relative_to(ROOT)} ...")
        pip = [python, "-m", "pip", "install", "--quiet", "pyzmq"]
        proc = subprocess.run(pip, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"pip failed:\n{proc.stdout}{proc.stderr}")
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_counts(out: Path) -> dict[int, tuple[int, float]]:
    """``{worker pid: (tasks run, monotonic time of its last task)}`` from the count files."""
    counts = {}
    for path in out.glob("*.count"):
        count, last = path.read_text().split()
        counts[int(path.stem)] = (int(count), float(last))
    return counts


def peak_rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(x.split()[1]) for x in status if x.startswith("VmHWM:")) / 1024
    except OSError:  # the process is gone (a restarted worker)
        return 0.0


def log_tails(out: Path) -> str:
    return "\n".join(f"--- {name}:\n{(out / name).read_text()[-2000:]}" for name in LOGS)


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError(f"no answer from the client within {timeout:.0f} s")
    return proc.stdout.readline()


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop ``proc`` (close its stdin if piped, else SIGTERM); SIGKILL its process group if late."""
    if proc.poll() is not None:
        return
    if proc.stdin is not None:
        proc.stdin.close()
    else:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session (start_new_session): its children
        proc.wait()


def measure(lib: str, python: Path | str, env: dict[str, str], tasks: int, workers: int) -> Run:
    """One run: start the workers and the client, wait for the tasks, read the files, stop."""
    out = Path(tempfile.mkdtemp(prefix="zmq-bench-"))
    env = {
        **env,
        "ZMQ_BENCH_LIB": lib,
        "ZMQ_BENCH_ADDRESS": f"tcp://127.0.0.1:{free_port()}",
        "ZMQ_BENCH_DIR": str(out),
    }
    cli = ["-m", "taskq.cli"] if lib == "taskq" else ["-m", REFERENCE]
    worker_cmd = [python, *cli, "worker", f"{APP}:broker", "--workers", str(workers)]
    procs: list[subprocess.Popen[str]] = []
    run = Run(lib, workers, tasks)
    try:
        with open(out / LOGS[1], "w") as wlog, open(out / LOGS[0], "w") as clog:
            common = {"env": env, "cwd": ROOT, "text": True, "start_new_session": True}
            worker = subprocess.Popen(worker_cmd, stdout=wlog, stderr=wlog, **common)
            procs.append(worker)
            client = subprocess.Popen(
                [python, "-m", APP, str(tasks), str(workers)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=clog,
                **common,
            )
            procs.append(client)  # after the workers: taskq's say goodbye to it
        try:
            line = read_line(client, READY_TIMEOUT + 60 + tasks / 1000)
            run.t0, t1, run.kick_cpu_s = map(float, line.split())
        except (TimeoutError, ValueError) as exc:
            raise SystemExit(f"{lib}: the client failed ({exc}):\n{log_tails(out)}") from None
        run.kick_s = t1 - run.t0
        expected = tasks * (workers if lib == REFERENCE else 1)  # PUB/SUB: each worker, each
        deadline, total, changed = time.monotonic() + 120 + tasks / 500, -1, time.monotonic()
        run.ending = "timed out"
        while time.monotonic() < deadline:
            counts = read_counts(out)
            if sum(c for c, _ in counts.values()) != total:
                total, changed = sum(c for c, _ in counts.values()), time.monotonic()
            if total >= expected or time.monotonic() - changed >= IDLE:
                run.ending = "all ran" if total >= expected else "went idle"
                break
            if worker.poll() is not None or client.poll() is not None:
                raise SystemExit(f"{lib}: a process exited early:\n{log_tails(out)}")
            time.sleep(0.1)
        counts = read_counts(out)
        run.end = max((last for _, last in counts.values()), default=0.0)
        pids = {int(p.stem) for p in out.glob("*.ready")} | set(counts)
        run.rss_mib = max((peak_rss_mib(pid) for pid in pids), default=0.0)
        ran: set[int] = set()
        for path in sorted(out.glob("*.nums")):
            numbers = array.array("l")
            data = path.read_bytes()
            numbers.frombytes(data[: len(data) - len(data) % numbers.itemsize])
            run.per_worker.append(len(numbers))
            ran.update(numbers)
        run.unique = len(ran)
        if lib == "taskq" and (run.unique != tasks or run.duplicates):
            print(
                f"WARNING: taskq ran {run.unique:,} distinct tasks of {tasks:,} "
                f"with {run.duplicates:,} duplicate executions"
            )
        return run
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run, for smoke tests")
    args = parser.parse_args()
    tasks, flood = (2_000, 10_000) if args.quick else (20_000, 100_000)
    print(f"Python {platform.python_version()} ({platform.python_implementation()}) on")
    print(f"{platform.platform()}, {os.cpu_count()} CPUs")
    print("load average (1, 5, 15 min) at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    ref_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    interps = {"taskq": (sys.executable, taskq_env()), REFERENCE: (ensure_reference_zmq(), ref_env)}
    repeats = 1 if args.quick else REPEATS
    runs: list[Run] = []
    best: dict[tuple[str, str], Run] = {}  # the fastest of each library's repeats
    for what, n, workers in (("1w", tasks, 1), ("2w", tasks, 2), ("flood", flood, 1)):
        for _ in range(1 if what == "flood" else repeats):
            for lib, (python, env) in interps.items():
                load = os.getloadavg()[0]
                print(
                    f"Measuring {lib}: {n:,} tasks, {workers} worker(s) (load {load:.2f})",
                    flush=True,
                )
                runs.append(run := measure(lib, python, env, n, workers))
                if (lib, what) not in best or run.rate > best[lib, what].rate:
                    best[lib, what] = run
    q = {what: run for (lib, what), run in best.items() if lib == "taskq"}
    r = {what: run for (lib, what), run in best.items() if lib == REFERENCE}

    def pct(run: Run) -> float:
        return 100 * run.unique / run.tasks

    once = all(run.unique == run.tasks and not run.duplicates for run in runs if run.lib == "taskq")
    rss = {lib: max(run.rss_mib for run in runs if run.lib == lib and run.tasks == tasks)
           for lib in interps}  # fmt: skip
    cpu = {lib: min(run.kick_cpu_us for run in runs if run.lib == lib and run.tasks == tasks
                    and run.workers == 1) for lib in interps}  # fmt: skip
    # metric, taskq, taskiq, higher is better, target text, target met
    rows = [
        ("tasks/s, 1 worker", q["1w"].rate, r["1w"].rate, True, "ratio >= 6",
         q["1w"].rate >= 6 * r["1w"].rate),
        ("client CPU us per kick, 1 worker", cpu["taskq"], cpu[REFERENCE], False, "taskq <= 10",
         cpu["taskq"] <= 10),
        ("tasks/s, 2 workers", q["2w"].rate, r["2w"].rate, True, "each once, > 1 worker",
         once and q["2w"].rate > q["1w"].rate),
        ("duplicate runs, 2 workers", q["2w"].duplicates, r["2w"].duplicates, False, None, None),
        (f"delivered % of {tasks:,}, 1 worker", pct(q["1w"]), pct(r["1w"]), True, None, None),
        (f"delivered % of {flood:,}", pct(q["flood"]), pct(r["flood"]), True, "taskq == 100",
         q["flood"].unique == flood),
        ("worker peak RSS (MiB)", rss["taskq"], rss[REFERENCE], False, "taskq <= 30",
         rss["taskq"] <= 30),
    ]  # fmt: skip
    print()
    head = f"{'metric':<32} {'taskq':>10} {REFERENCE:>10} {'ratio':>9}  target"
    print(head, "-" * len(head), sep="\n")
    for name, mine, ref, higher_better, goal, met in rows:
        num, den = (mine, ref) if higher_better else (ref, mine)
        ratio = f"{num / den:>8.2f}x" if den > 0 else f"{'-':>9}"
        fmt = ",d" if isinstance(mine, int) else ".2f" if "%" in name else ",.1f"
        fmt = ",.0f" if fmt == ",.1f" and mine >= 100 else fmt
        line = f"{name:<32} {mine:>10{fmt}} {ref:>10{fmt}} {ratio}"
        if goal is not None:
            line += f"  {goal}: {'met' if met else 'NOT MET'}"
        print(line)
    print()
    for run in runs:
        print(run.describe())
    print()
    print(f"tasks/s: best of {repeats}, distinct tasks run / (last task run - first kick).")
    print("client CPU per kick: CPU time of the client process during its kicks / tasks")
    print(f"(the lowest of the {tasks:,}-task 1-worker runs).")
    print("ratio > 1: taskq better. Each task once: checked in every taskq run.")
    print(f"A run that went idle lost messages and ended {IDLE:.0f} s after its last progress;")
    print("its rate counts only the tasks that ran, up to its last one. taskiq's PUB/SUB runs")
    print("each task in every worker. Peak RSS: largest VmHWM of the worker processes of the")
    print(f"{tasks:,}-task runs (taskq spawns them, taskiq forks them from its manager).")
    print("load average (1, 5, 15 min) at end:   {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
