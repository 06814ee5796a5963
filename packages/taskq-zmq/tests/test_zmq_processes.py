"""The ZeroMQ broker across processes: a client and two worker processes, nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent / "zmq_app.py"


def start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [sys.executable, str(APP), "worker"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "ready"
    return worker


def ran_by(out: Path) -> list[list[int]]:
    files = sorted(out.parent.glob(out.name + ".[0-9]*[0-9]"))
    return [[int(n) for n in f.read_text().split()] for f in files]


def wait_until_ran(out: Path, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = [f.read_text() for f in out.parent.glob(out.name + ".*.count")]
        if sum(int(c or 0) for c in counts) >= count:
            return
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("count", "client"),
    [(100_000, ["client"]), (50_000, ["batches", "1000"])],
    ids=["one-by-one", "batches"],
)
def test_tasks_through_two_workers_each_run_once(tmp_path, address, count, client):
    out = tmp_path / "ran"
    env = {**os.environ, "TASKQ_TEST_ZMQ_ADDRESS": address, "TASKQ_TEST_OUT": str(out)}
    workers = [start_worker(env), start_worker(env)]
    try:
        sender = subprocess.run(
            [sys.executable, str(APP), client[0], str(count), *client[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        assert sender.stdout.strip() == f"sent {count}"
        wait_until_ran(out, count)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
    per_worker = ran_by(out)
    assert len(per_worker) == 2
    everything = sorted(n for ran in per_worker for n in ran)
    assert len(everything) == count, f"{len(everything) - count:+d} runs for {count} tasks"
    assert everything == list(range(count)), "some tasks ran twice and others never"
    assert all(len(ran) > count // 10 for ran in per_worker), "one worker got almost nothing"


def test_a_worker_stopped_with_tasks_it_had_not_started_hands_each_to_another(tmp_path, address):
    count = 600
    out = tmp_path / "ran"
    env = {
        **os.environ,
        "TASKQ_TEST_ZMQ_ADDRESS": address,
        "TASKQ_TEST_OUT": str(out),
        "TASKQ_TEST_TASK_S": "0.05",
        "TASKQ_TEST_MAX_ASYNC": "10",  # so its buffer (prefetch 256) stays full while it runs
    }
    leaving = start_worker(env)
    sender = subprocess.Popen(
        [sys.executable, str(APP), "client", str(count), "hold"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    staying = None
    try:
        wait_until_ran(out, 1)
        leaving.send_signal(signal.SIGTERM)  # it finishes what runs, hands back its buffer
        assert leaving.wait(timeout=60) == 0
        staying = start_worker(env)
        assert sender.stdout is not None
        assert sender.stdin is not None
        assert sender.stdout.readline().strip() == f"sent {count}"
        wait_until_ran(out, count)
        sender.stdin.close()
        assert sender.wait(timeout=60) == 0
    finally:
        sender.kill()
        for worker in [leaving, staying]:
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
    per_worker = ran_by(out)
    assert len(per_worker) == 2
    ran_before_stopping = Path(f"{out}.{leaving.pid}").read_text().split()
    assert 0 < len(ran_before_stopping) < count  # it stopped with a full buffer
    everything = sorted(n for ran in per_worker for n in ran)
    assert everything == list(range(count)), f"{len(everything)} runs of {count} tasks"
