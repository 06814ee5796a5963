"""The RabbitMQ broker across processes: a client and ``taskq worker`` processes, real RabbitMQ.

Each worker process appends the number of each task it starts to ``<pid>.ran`` and of each
task it finished to ``<pid>.done`` (see ``amqp_app.py``). ``TASKQ_AMQP_E2E_TASKS`` sets the
number of tasks of the many-tasks test (default 20,000, about 17 s on a 2-core machine; the
README's run uses the default, tox's envs 5,000; 100,000 took 88 s).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from taskq.testing import eventually_blocking
from taskq_amqp.testing import delete_queues, unique_queue_name

from .conftest import named_connections

HERE = Path(__file__).resolve().parent
MANY_TASKS = int(os.environ.get("TASKQ_AMQP_E2E_TASKS", "20000"))


@pytest.fixture
def app_env(amqp_url: str, tmp_path: Path) -> Any:
    out = tmp_path / "out"
    out.mkdir()
    queue = unique_queue_name("e2e")
    yield {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "AMQP_APP_URL": amqp_url,
        "AMQP_APP_QUEUE": queue,
        "AMQP_APP_OUT": str(out),
    }
    delete_queues(amqp_url, [queue, f"{queue}.dead-letters", f"{queue}.delay.1000"])


def start_workers(env: dict[str, str], workers: int, *options: str) -> subprocess.Popen[bytes]:
    """``taskq worker amqp_app:broker`` with ``workers`` processes, once they all started."""
    out = Path(env["AMQP_APP_OUT"])
    before = len(list(out.glob("*.ready")))
    command = [sys.executable, "-m", "taskq", "worker", "amqp_app:broker"]
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


def start_client(env: dict[str, str], count: int, pause: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "amqp_app.py"), str(count), str(pause)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def send(env: dict[str, str], count: int, pause: float = 0.0) -> None:
    client = start_client(env, count, pause)
    out, _ = client.communicate(timeout=300)
    assert client.returncode == 0
    assert out.strip() == f"sent {count}"


def numbers(env: dict[str, str], kind: str) -> dict[int, list[int]]:
    """``{pid: [task numbers]}`` from the ``<pid>.<kind>`` files."""
    found = {}
    for path in Path(env["AMQP_APP_OUT"]).glob(f"*.{kind}"):
        found[int(path.stem)] = [int(n) for n in path.read_text().split()]
    return found


def _all(by_pid: dict[int, list[int]]) -> list[int]:
    return [n for ran in by_pid.values() for n in ran]


def wait_until_done(env: dict[str, str], count: int, timeout: float = 180) -> None:
    eventually_blocking(
        lambda: len(set(_all(numbers(env, "done")))) >= count,
        timeout,
        interval=0.5,
        what=f"{count} tasks done",
    )


def worker_logs(env: dict[str, str]) -> str:
    return "".join(path.read_text() for path in Path(env["AMQP_APP_OUT"]).glob("workers-*.log"))


def stop(manager: subprocess.Popen[Any]) -> int:
    if manager.poll() is None:
        manager.send_signal(signal.SIGTERM)
    return manager.wait(timeout=90)


@pytest.mark.timeout(600)
def test_many_tasks_through_two_worker_processes_each_complete_once(app_env):
    count = MANY_TASKS
    workers = start_workers(app_env, 2)
    try:
        send(app_env, count)
        wait_until_done(app_env, count, timeout=540)
    finally:
        assert stop(workers) == 0
    done = numbers(app_env, "done")
    everything = _all(done)
    assert len(everything) == count, f"{len(everything) - count:+d} runs for {count} tasks"
    assert sorted(everything) == list(range(count)), "some tasks ran twice and others never"
    assert len(done) == 2, "both worker processes should have run tasks"
    assert all(len(ran) > count // 10 for ran in done.values()), "one worker got almost nothing"


def test_a_killed_worker_loses_nothing_and_only_its_running_task_runs_twice(app_env):
    count = 3000
    one_at_a_time = ("--max-async-tasks", "1")
    doomed = start_workers(app_env, 1, *one_at_a_time)
    (doomed_pid,) = [int(path.stem) for path in Path(app_env["AMQP_APP_OUT"]).glob("*.ready")]
    survivor = start_workers(app_env, 1, *one_at_a_time)
    try:
        send(app_env, count, pause=0.002)
        eventually_blocking(
            lambda: len(numbers(app_env, "done").get(doomed_pid, [])) >= 200,
            60,
            what="200 tasks run by the worker about to be killed",
        )
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


def test_the_server_closing_every_connection_mid_run_loses_nothing(app_env, rabbit_admin):
    count = 20_000
    # every connection of this run (client and workers) carries its name: only they are closed
    name = app_env["AMQP_APP_QUEUE"]
    app_env["AMQP_APP_URL"] = named_connections(app_env["AMQP_APP_URL"], name)
    workers = start_workers(app_env, 2)
    try:
        client = start_client(app_env, count)
        eventually_blocking(
            lambda: len(_all(numbers(app_env, "done"))) >= 1000, 60, what="1000 tasks run"
        )
        # the client's and each worker process's connection
        assert rabbit_admin.close_connections(name) >= 3, "the run's connections were not found"
        out, _ = client.communicate(timeout=300)
        assert out.strip() == f"sent {count}"
        wait_until_done(app_env, count)
    finally:
        assert stop(workers) == 0
    everything = _all(numbers(app_env, "done"))
    assert sorted(set(everything)) == list(range(count)), "some tasks never completed"
    # at least once: tasks running (or sent) when their connection closed may run again
    assert len(everything) - count <= 2 * 100 + 1000, "far more tasks ran twice than were in flight"
    logs = worker_logs(app_env)
    assert logs.count("Lost the connection to RabbitMQ") == 2, logs[-2000:]  # once per worker
    assert "Reconnected to RabbitMQ" in logs


def test_delayed_and_prioritised_tasks_across_processes(app_env):
    app_env["AMQP_APP_MAX_PRIORITY"] = "9"
    code = (
        "import asyncio, amqp_app\n"
        "async def main():\n"
        "    await amqp_app.broker.startup()\n"
        "    record = amqp_app.record\n"
        "    await record.kicker().with_labels(delay=1).kiq(100)\n"
        "    for n, p in enumerate([1, 7, 3, 9, 0, 5]):\n"
        "        await record.kicker().with_labels(priority=p).kiq(n)\n"
        "    await amqp_app.broker.shutdown()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code], env=app_env, check=True, timeout=60)
    sent_at = time.monotonic()
    workers = start_workers(app_env, 1, "--max-async-tasks", "1")
    try:
        wait_until_done(app_env, 7, timeout=60)
    finally:
        assert stop(workers) == 0
    (ran,) = numbers(app_env, "ran").values()
    assert ran[:6] == [3, 1, 5, 2, 0, 4], "the backlog did not run highest priority first"
    assert ran[6] == 100
    assert time.monotonic() - sent_at < 60


def test_a_poison_task_and_a_rejected_one_go_through_the_dlq_command(app_env):
    app_env["AMQP_APP_MAX_DELIVERIES"] = "2"
    code = (
        "import asyncio, amqp_app\n"
        "async def main():\n"
        "    await amqp_app.broker.startup()\n"
        "    await amqp_app.refuse.kicker().with_task_id('refused-1').kiq(7)\n"
        "    await amqp_app.crash.kicker().with_task_id('poison-1').kiq()\n"
        "    await amqp_app.broker.shutdown()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code], env=app_env, check=True, timeout=60)
    # one at a time: the crash must not take the other task down with it (prefetched
    # messages of a dead worker count a delivery too)
    workers = start_workers(app_env, 1, "--max-async-tasks", "1")
    try:
        eventually_blocking(
            lambda: "2 of 2 dead letter(s)" in dlq(app_env, "list").stdout,
            120,
            interval=0.5,
            what="the 2 dead letters",
        )
    finally:
        stop(workers)
    listed = dlq(app_env, "list").stdout
    assert "amqp_app:crash[poison-1]" in listed
    assert "amqp_app:refuse[refused-1]" in listed
    ids = {line.split()[3]: line.split()[0] for line in listed.splitlines() if "[" in line}
    poison_id, refused_id = ids["amqp_app:crash[poison-1]"], ids["amqp_app:refuse[refused-1]"]
    shown = dlq(app_env, "show", refused_id)
    assert shown.returncode == 0, shown.stderr
    assert "reason:      TaskRejectedError: the task was rejected" in shown.stdout
    assert "args:        [7]" in shown.stdout
    poison = dlq(app_env, "show", poison_id).stdout
    assert "delivered 2 times without an acknowledgement" in poison
    replayed = dlq(app_env, "replay", refused_id)
    assert "replayed 1 dead letter(s)" in replayed.stdout
    assert "1 of 1 dead letter(s)" in dlq(app_env, "list").stdout
    asyncio.run(_expect_in_queue(app_env, b"refused-1"))
    assert "purged 1 dead letter(s)" in dlq(app_env, "purge", "--all").stdout
    assert "0 of 0 dead letter(s)" in dlq(app_env, "list").stdout


async def _expect_in_queue(env: dict[str, str], marker: bytes) -> None:
    from taskq_amqp import AmqpBroker

    broker = AmqpBroker(env["AMQP_APP_URL"], env["AMQP_APP_QUEUE"])
    await broker.startup()
    try:
        async for item in broker.listen():
            assert marker in item.data
            await item.ack()
            break
    finally:
        await broker.shutdown()


def dlq(env: dict[str, str], action: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskq", "dlq", action, "amqp_app:broker", *args],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
