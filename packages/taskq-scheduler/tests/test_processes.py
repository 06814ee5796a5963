"""End to end: a ``taskq worker`` over ZeroMQ runs what two ``taskq scheduler`` processes
sharing a Redis source send; every fire runs once."""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from taskq.testing import eventually_blocking, free_port

APPS = Path(__file__).resolve().parent / "apps"
WAIT_S = 90.0


def free_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture
def environment(redis_url: str, redis_prefix: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(APPS), os.environ.get("PYTHONPATH", "")]),
        "SCHED_ADDRESS": free_address(),
        "SCHED_REDIS_URL": redis_url,
        "SCHED_PREFIX": redis_prefix,
        "SCHED_RUNS": str(tmp_path / "runs.txt"),
    }


def taskq(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "taskq", *args], cwd=APPS, env=env)


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def runs(env: dict[str, str]) -> list[tuple[str, str, str]]:
    path = Path(env["SCHED_RUNS"])
    if not path.exists():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines()]  # type: ignore[misc]


async def add_schedules(env: dict[str, str]) -> datetime:
    """Add the schedules through the app's own task; return the one-shot's time."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("SCHED_")})
    sys.path.insert(0, str(APPS))
    try:
        import importlib

        import sched_app

        app = importlib.reload(sched_app)
        when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=6)
        await app.source.startup()
        try:
            kicker = app.record.kicker
            await kicker().with_schedule_id("c").schedule_by_cron(app.source, "*/2 * * * * *", "c")
            await kicker().with_schedule_id("i").schedule_by_interval(app.source, 3, "i")
            await kicker().with_schedule_id("o").schedule_by_time(app.source, when, "o")
        finally:
            await app.source.shutdown()
        return when
    finally:
        sys.path.remove(str(APPS))


def test_two_schedulers_sharing_redis_send_each_fire_once(environment: dict[str, str]) -> None:
    when = asyncio.run(add_schedules(environment))
    worker = taskq(environment, "worker", "sched_app:broker", "--workers", "1")
    schedulers = [
        taskq(environment, "scheduler", "sched_app:scheduler", "--update-interval", "2"),
        taskq(environment, "scheduler", "sched_app:make_scheduler"),
    ]
    try:
        eventually_blocking(
            lambda: (
                sum(tag == "c" for tag, _, _ in runs(environment)) >= 5
                and any(tag == "o" for tag, _, _ in runs(environment))
            ),
            WAIT_S,
            interval=0.2,
            what="five cron fires and the one-shot",
        )
    finally:
        statuses = [stop(process) for process in schedulers]
        time.sleep(1)  # let the worker run what was sent last
        worker_status = stop(worker)
    assert statuses == [0, 0]
    assert worker_status == 0
    done = runs(environment)
    keys = collections.Counter(key for _, key, _ in done)
    assert [key for key, count in keys.items() if count > 1] == [], "fires sent twice"
    assert len({task_id for _, _, task_id in done}) == len(done)
    assert [key for tag, key, _ in done if tag == "o"] == [
        f"o@{when.isoformat(timespec='milliseconds')}"
    ]
    for tag, step in (("c", 2), ("i", 3)):
        times = sorted(
            datetime.fromisoformat(key.partition("@")[2]) for t, key, _ in done if t == tag
        )
        gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(times)}
        assert gaps == {step}, f"{tag}: fires missing between {times[0]} and {times[-1]}"


def test_a_bad_target_is_a_usage_error(environment: dict[str, str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "taskq", "scheduler", "sched_app:broker"],
        cwd=APPS,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "not a TaskiqScheduler" in run.stderr
