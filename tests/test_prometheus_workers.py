"""``taskq worker --workers 2`` with PrometheusMiddleware: one endpoint reports both processes."""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from taskq.testing import free_port

pytest.importorskip("prometheus_client")
pytest.importorskip("taskq_zmq")

APPS = Path(__file__).resolve().parent / "apps"
TASKS = 100
WORKERS = 2


def scrape(port: int) -> dict[str, float]:
    """The endpoint's samples of the test task, by sample name."""
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 30
    while True:
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    found = re.findall(r'^(\w+)\{task_name="metrics:work"\} (\S+)$', text, re.MULTILINE)
    return {name: float(value) for name, value in found}


async def send_all(env: dict[str, str]) -> list[int | None]:
    os.environ.update({k: v for k, v in env.items() if k.startswith("METRICS_")})
    sys.path.insert(0, str(APPS))
    try:
        import metrics_app

        app = importlib.reload(metrics_app)
        await app.broker.startup()
        try:
            for _ in range(600):
                if app.broker.connected_workers >= WORKERS:
                    break
                await asyncio.sleep(0.05)
            tasks = [await app.work.kiq(n) for n in range(TASKS)]
            results = [await task.wait_result(timeout=120) for task in tasks]
        finally:
            await app.broker.shutdown()
    finally:
        sys.path.remove(str(APPS))
    return [None if r.is_err else r.return_value for r in results]


@pytest.mark.timeout(180)
def test_the_endpoint_sums_the_metrics_of_every_worker_process(tmp_path: Path) -> None:
    port = free_port()
    address = f"tcp://127.0.0.1:{free_port()}"
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "PYTHONPATH": os.pathsep.join([str(APPS), os.environ.get("PYTHONPATH", "")]),
        "METRICS_ADDRESS": address,
        "METRICS_PORT": str(port),
        "METRICS_PATH": str(tmp_path / "metrics"),
        "METRICS_SQLITE": str(tmp_path / "results.sqlite3"),
    }
    command = [sys.executable, "-m", "taskq", "worker", "metrics_app:broker"]
    command += ["--workers", str(WORKERS), "--log-level", "WARNING"]
    workers = subprocess.Popen(command, cwd=APPS, env=env)
    try:
        pids = asyncio.run(send_all(env))
        metrics = scrape(port)
    finally:
        workers.send_signal(signal.SIGTERM)
        assert workers.wait(timeout=60) == 0
    failing = TASKS // 10
    assert pids.count(None) == failing
    assert len({pid for pid in pids if pid is not None}) == WORKERS  # both processes ran tasks
    # each failing task ran twice (one retry); the endpoint counts the runs of both processes
    assert metrics["taskq_tasks_received_total"] == TASKS + failing
    assert metrics["taskq_tasks_succeeded_total"] == TASKS - failing
    assert metrics["taskq_tasks_failed_total"] == 2 * failing
    assert metrics["taskq_tasks_retried_total"] == failing
    assert metrics["taskq_task_execution_seconds_count"] == TASKS + failing
    assert metrics["taskq_tasks_running"] == 0
    groups = list((tmp_path / "metrics").iterdir())
    assert len(groups) == 1  # one directory for the whole group
    assert len(list(groups[0].glob("counter_*.db"))) == WORKERS
