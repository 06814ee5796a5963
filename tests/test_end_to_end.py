"""A client and worker processes (``taskq worker``) over ZeroMQ, results in SQLite or Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq.testing import free_port

APPS = Path(__file__).resolve().parent / "apps"
REDIS_URL = os.environ.get("TASKQ_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def redis_or_skip() -> None:
    redis = pytest.importorskip("redis")
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires Redis at {REDIS_URL}: {exc}", pytrace=False)
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")


@pytest.fixture(params=["sqlite", "redis"])
def environment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    prefix = f"taskq-e2e-{uuid.uuid4().hex}"
    if request.param == "redis":
        redis_or_skip()
    runs = tmp_path / "runs"
    runs.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(APPS), os.environ.get("PYTHONPATH", "")]),
        "E2E_ADDRESS": free_address(),
        "E2E_BACKEND": request.param,
        "E2E_SQLITE": str(tmp_path / "results.sqlite3"),
        "E2E_REDIS_URL": REDIS_URL,
        "E2E_REDIS_PREFIX": prefix,
        "E2E_RUNS": str(runs),
    }
    yield env
    if request.param == "redis":
        import redis

        with redis.Redis.from_url(REDIS_URL) as client:
            keys = list(client.scan_iter(match=f"{prefix}:*"))
            if keys:
                client.delete(*keys)


def start_workers(env: dict[str, str], workers: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "taskq", "worker", "e2e_app:broker"]
    command += ["--workers", str(workers), "--shutdown-timeout", "30", "--log-level", "WARNING"]
    return subprocess.Popen(command, cwd=APPS, env=env)


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


async def send_and_collect(
    env: dict[str, str], count: int, pause: float, workers: int, during: Any = None
) -> list[Any]:
    os.environ.update({k: v for k, v in env.items() if k.startswith("E2E_")})
    sys.path.insert(0, str(APPS))
    try:
        import importlib

        import e2e_app

        app = importlib.reload(e2e_app)
        await app.broker.startup()
        for _ in range(600):  # every worker process connected, or the spread is luck
            if app.broker.connected_workers >= workers:
                break
            await asyncio.sleep(0.05)
        tasks = [await app.square.kiq(n, pause) for n in range(count)]
        if during is not None:
            during()
        results = [await task.wait_result(timeout=120) for task in tasks]
        await app.broker.shutdown()
        return results
    finally:
        sys.path.remove(str(APPS))


def runs_of(env: dict[str, str]) -> dict[str, list[int]]:
    return {
        path.name: [int(n) for n in path.read_text().split()]
        for path in Path(env["E2E_RUNS"]).iterdir()
    }


def test_two_worker_processes_run_each_task_once(environment):
    workers = start_workers(environment, 2)
    try:
        results = asyncio.run(send_and_collect(environment, 300, 0.002, workers=2))
    finally:
        assert stop(workers) == 0
    assert all(not r.is_err for r in results), [r.error for r in results if r.is_err][:3]
    assert [r.return_value[0] for r in results] == [n * n for n in range(300)]
    runs = runs_of(environment)
    everything = sorted(n for ran in runs.values() for n in ran)
    assert everything == list(range(300)), "a task ran twice, or never"
    assert len(runs) == 2, "both worker processes should have run tasks"


@pytest.mark.parametrize("environment", ["sqlite"], indirect=True)
def test_sigterm_to_a_worker_under_load_loses_nothing(environment):
    leaving = start_workers(environment, 1)
    staying = start_workers(environment, 1)
    time.sleep(1)

    def stop_one_worker() -> None:
        time.sleep(0.3)
        leaving.send_signal(signal.SIGTERM)

    try:
        results = asyncio.run(
            send_and_collect(environment, 400, 0.01, workers=2, during=stop_one_worker)
        )
        assert leaving.wait(timeout=60) == 0
    finally:
        stop(leaving)
        assert stop(staying) == 0
    assert all(not r.is_err for r in results)
    everything = sorted(n for ran in runs_of(environment).values() for n in ran)
    assert everything == list(range(400)), "a task was lost or ran twice"
