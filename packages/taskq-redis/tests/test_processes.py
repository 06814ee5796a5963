"""The Redis broker across processes: a client and ``taskq worker`` processes, real Redis.

Each worker process appends the number of each task it starts to ``<pid>.ran`` and of each
task it finished to ``<pid>.done`` (see ``redis_app.py``). ``TASKQ_REDIS_E2E_TASKS`` sets the
number of tasks of the many-tasks test (default 100,000; tox runs 20,000 on each Python).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from taskq.event_stores import open_event_store
from taskq.task_events import EventKind, TaskQuery

HERE = Path(__file__).resolve().parent
MANY_TASKS = int(os.environ.get("TASKQ_REDIS_E2E_TASKS", "100000"))


@pytest.fixture
def app_env(redis_url: str, redis_prefix: str, tmp_path: Path) -> dict[str, str]:
    out = tmp_path / "out"
    out.mkdir()
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "REDIS_APP_URL": redis_url,
        "REDIS_APP_PREFIX": redis_prefix,
        "REDIS_APP_OUT": str(out),
        "REDIS_APP_CLIENT_NAME": f"taskq-test-{uuid.uuid4().hex[:12]}",
    }


def start_workers(env: dict[str, str], workers: int, *options: str) -> subprocess.Popen[bytes]:
    """``taskq worker redis_app:broker`` with ``workers`` processes, once they all started."""
    out = Path(env["REDIS_APP_OUT"])
    before = len(list(out.glob("*.ready")))
    command = [sys.executable, "-m", "taskq", "worker", "redis_app:broker"]
    command += ["--workers", str(workers), "--shutdown-timeout", "30", "--log-level", "WARNING"]
    log = open(out / f"workers-{before}.log", "w")  # noqa: SIM115 - closed with the process
    manager = subprocess.Popen([*command, *options], cwd=HERE, env=env, stderr=log)
    log.close()
    deadline = time.monotonic() + 60
    while len(list(out.glob("*.ready"))) < before + workers:
        assert time.monotonic() < deadline, "the worker processes did not start within 60 s"
        assert manager.poll() is None, "the worker manager exited"
        time.sleep(0.05)
    return manager


def send(env: dict[str, str], count: int, pause: float = 0.0) -> None:
    client = start_client(env, count, pause)
    out, _ = client.communicate(timeout=300)
    assert client.returncode == 0
    assert out.strip() == f"sent {count}"


def start_client(
    env: dict[str, str], count: int, pause: float = 0.0, *options: str
) -> subprocess.Popen[str]:
    """The client process kicking ``count`` tasks; its connections have a name of their own."""
    client_env = {**env, "REDIS_APP_CLIENT_NAME": env["REDIS_APP_CLIENT_NAME"] + "-client"}
    return subprocess.Popen(
        [sys.executable, str(HERE / "redis_app.py"), str(count), str(pause), *options],
        env=client_env,
        stdout=subprocess.PIPE,
        text=True,
    )


def numbers(env: dict[str, str], kind: str) -> dict[int, list[int]]:
    """``{pid: [task numbers]}`` from the ``<pid>.<kind>`` files."""
    found = {}
    for path in Path(env["REDIS_APP_OUT"]).glob(f"*.{kind}"):
        found[int(path.stem)] = [int(n) for n in path.read_text().split()]
    return found


def wait_until_done(env: dict[str, str], count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = sum(path.stat().st_size for path in Path(env["REDIS_APP_OUT"]).glob("*.done"))
        if done and len(set(_all(numbers(env, "done")))) >= count:
            return
        time.sleep(0.5)


def worker_logs(env: dict[str, str]) -> str:
    return "".join(path.read_text() for path in Path(env["REDIS_APP_OUT"]).glob("workers-*.log"))


def _all(by_pid: dict[int, list[int]]) -> list[int]:
    return [n for ran in by_pid.values() for n in ran]


def stop(manager: subprocess.Popen[Any]) -> int:
    if manager.poll() is None:
        manager.send_signal(signal.SIGTERM)
    return manager.wait(timeout=90)


def test_many_tasks_through_two_worker_processes_each_complete_once(app_env, raw_redis):
    count = MANY_TASKS
    workers = start_workers(app_env, 2)
    try:
        send(app_env, count)
        wait_until_done(app_env, count)
    finally:
        assert stop(workers) == 0
    done = numbers(app_env, "done")
    everything = _all(done)
    assert len(everything) == count, f"{len(everything) - count:+d} runs for {count} tasks"
    assert sorted(everything) == list(range(count)), "some tasks ran twice and others never"
    assert len(done) == 2, "both worker processes should have run tasks"
    assert all(len(ran) > count // 10 for ran in done.values()), "one worker got almost nothing"
    stream = f"{app_env['REDIS_APP_PREFIX']}:taskq:p0"
    assert raw_redis.xlen(stream) == 0, "acknowledged entries were left in the stream"


def test_a_killed_worker_loses_nothing_and_only_its_running_task_runs_twice(app_env):
    count = 3000
    app_env["REDIS_APP_LEASE_S"] = "3"
    one_at_a_time = ("--max-async-tasks", "1")
    doomed = start_workers(app_env, 1, *one_at_a_time)
    (doomed_pid,) = [int(path.stem) for path in _ready(app_env)]
    survivor = start_workers(app_env, 1, *one_at_a_time)
    try:
        send(app_env, count, pause=0.002)
        deadline = time.monotonic() + 60
        while len(numbers(app_env, "done").get(doomed_pid, [])) < 200:
            assert time.monotonic() < deadline, "the doomed worker ran nothing"
            time.sleep(0.05)
        os.kill(doomed_pid, signal.SIGKILL)
        wait_until_done(app_env, count)
    finally:
        stop(doomed)
        assert stop(survivor) == 0
    ran = numbers(app_env, "ran")
    done = set(_all(numbers(app_env, "done")))
    assert done == set(range(count)), f"{count - len(done)} tasks never completed"
    twice = {n: c for n, c in Counter(_all(ran)).items() if c > 1}
    assert len(twice) <= 1, f"{len(twice)} tasks ran more than once: {sorted(twice)[:10]}"
    for n in twice:
        assert n in ran[doomed_pid], f"task {n} ran twice but not on the killed worker"
        assert twice[n] == 2
    if twice:  # the task it was running went to another worker once its lease expired
        assert "whose lease (3 s) had expired" in worker_logs(app_env)


def _ready(env: dict[str, str]) -> list[Path]:
    return list(Path(env["REDIS_APP_OUT"]).glob("*.ready"))


def test_a_30_s_task_with_a_5_s_lease_runs_once(app_env):
    app_env["REDIS_APP_LEASE_S"] = "5"
    workers = start_workers(app_env, 2)
    try:
        send(app_env, 1, pause=30.0)
        wait_until_done(app_env, 1, timeout=120)
    finally:
        assert stop(workers) == 0
    assert _all(numbers(app_env, "ran")) == [0], "the slow task was handed to a second worker"
    assert _all(numbers(app_env, "done")) == [0]


def test_dropping_the_workers_connections_mid_run_loses_nothing(app_env, raw_redis):
    count = 20_000
    workers = start_workers(app_env, 2)
    name = app_env["REDIS_APP_CLIENT_NAME"]
    try:
        client = start_client(app_env, count)
        killed = 0
        for _ in range(4):
            time.sleep(0.5)
            for connection in raw_redis.client_list():
                if connection.get("name") == name:
                    raw_redis.client_kill_filter(_id=connection["id"])
                    killed += 1
        assert killed, "the workers had no connection to drop"
        out, _ = client.communicate(timeout=300)
        assert out.strip() == f"sent {count}"
        wait_until_done(app_env, count)
    finally:
        assert stop(workers) == 0
    everything = _all(numbers(app_env, "done"))
    assert sorted(set(everything)) == list(range(count)), "some tasks never completed"
    assert len(everything) == count, f"{len(everything) - count} tasks ran twice"
    logs = worker_logs(app_env)
    assert "Lost the connection to Redis" in logs
    assert "Reconnected to Redis" in logs


def send_after(env: dict[str, str], first: str, count: int) -> str:
    """Send a ``first`` task (see ``redis_app.send``), then ``count``; return its task id."""
    client = start_client(env, count, 0.0, first)
    out, _ = client.communicate(timeout=60)
    assert client.returncode == 0
    first_line, sent_line = out.strip().splitlines()
    assert sent_line == f"sent {count}"
    return first_line.split()[1]


def test_a_task_that_stops_its_worker_each_time_ends_in_the_dead_letters(app_env, raw_redis):
    # each stop is graceful: the running message is handed back, keeping its delivery count;
    # the 20 waiting in the worker's buffer never started, so their count is not raised
    app_env["REDIS_APP_MAX_DELIVERIES"] = "2"
    count = 20
    workers = start_workers(app_env, 1, "--max-async-tasks", "1", "--shutdown-timeout", "0.5")
    try:
        stop_task_id = send_after(app_env, "stop", count)
        wait_until_done(app_env, count, timeout=60)
    finally:
        assert stop(workers) == 0
    assert sorted(_all(numbers(app_env, "done"))) == list(range(count))
    assert len(_ready(app_env)) == 3, "two graceful stops, then the message is a dead letter"
    dead_letters = f"{app_env['REDIS_APP_PREFIX']}:taskq:dead-letters"
    ((_, letter),) = raw_redis.xrange(dead_letters)
    assert stop_task_id.encode() in letter[b"m"]
    assert letter[b"deliveries"] == b"2"
    assert b"handed back by a stopping worker" in letter[b"reason"]


def test_a_task_that_exits_fails_and_the_tasks_queued_behind_it_run(app_env, raw_redis):
    app_env["REDIS_APP_RESULTS"] = "1"
    count = 20
    workers = start_workers(app_env, 1, "--max-async-tasks", "1")
    try:
        exit_task_id = send_after(app_env, "exit", count)
        wait_until_done(app_env, count, timeout=60)
    finally:
        assert stop(workers) == 0
    assert sorted(_all(numbers(app_env, "done"))) == list(range(count))
    assert len(_ready(app_env)) == 1, "the worker process was restarted"
    result = Path(app_env["REDIS_APP_OUT"], f"{exit_task_id}.result").read_text()
    assert result.startswith("True "), f"the exiting task has no failed result: {result}"
    assert "exit" in result.lower()
    stream = f"{app_env['REDIS_APP_PREFIX']}:taskq:p0"
    assert raw_redis.xlen(stream) == 0


def test_clients_and_workers_record_events_and_heartbeats_in_redis(app_env, redis_prefix):
    count = 200
    events_url = f"{app_env['REDIS_APP_URL']}?prefix={redis_prefix}:events"
    env = {**app_env, "REDIS_APP_EVENTS": events_url}
    workers = start_workers(env, 2)
    try:
        send(env, count)
        wait_until_done(env, count)
    finally:
        assert stop(workers) == 0
    tasks, histories, statuses = asyncio.run(_read_events(events_url))
    assert len(tasks) == count
    assert {task.state for task in tasks} == {EventKind.SUCCEEDED}
    kinds = ["sent", "received", "started", "succeeded"]
    odd = [
        [(event.kind.value, event.time, str(event.worker)) for event in history]
        for history in histories
        if [event.kind.value for event in history] != kinds
    ]
    assert not odd, f"{len(odd)} tasks with other histories, such as {odd[:3]}"
    assert {status.heartbeat.worker.process for status in statuses} == {0, 1}
    assert sum(status.heartbeat.processed for status in statuses) == count  # flushed at the stop
    assert {status.heartbeat.queue for status in statuses} == {"taskq"}


async def _read_events(url: str) -> tuple[list[Any], list[Any], list[Any]]:
    store = open_event_store(url)
    await store.startup()
    try:
        tasks = (await store.tasks(TaskQuery(limit=1000))).tasks
        histories = [await store.task_events(task.task_id) for task in tasks]
        return tasks, histories, await store.workers(stale_after=600)
    finally:
        await store.shutdown()
