"""`taskq worker` as users run it: real processes sharing a spool-directory broker."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

SUPPORT_DIR = Path(__file__).resolve().parent / "cli_support"
if str(SUPPORT_DIR) not in sys.path:
    sys.path.insert(0, str(SUPPORT_DIR))

from worker_run import SpoolClient, WorkerRun, eventually, pid_is_alive  # noqa: E402

from taskq import TaskExitError  # noqa: E402

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process groups"),
]

APP = "spool_app:broker"


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def client(spool: Path) -> SpoolClient:
    return SpoolClient(spool)


def settled(spool: Path) -> bool:
    """Whether every message taken was acknowledged (no file left under claimed/)."""
    return not list(spool.glob("claimed/*/*"))


def test_two_workers_run_each_task_once_and_store_results(spool: Path, client: SpoolClient) -> None:
    keys = {client.send("record", f"key-{n}"): f"key-{n}" for n in range(20)}

    with WorkerRun([APP, "--workers", "2"], spool) as run:
        results = {task_id: client.result(task_id) for task_id in keys}
        starts = run.wait_for_starts(2)
        run.send_signal(signal.SIGTERM)
        assert run.wait() == 0

    assert not any(result.is_err for result in results.values())
    assert {name for name, _ in starts} == {"worker-0", "worker-1"}
    pids = {pid for _, pid in starts}
    assert {result.return_value for result in results.values()} <= pids
    runs = [path.name.split(".")[0] for path in (spool / "runs").iterdir()]
    assert sorted(runs) == sorted(keys.values())  # each task ran exactly once
    assert {int(path.name) for path in (spool / "starts").iterdir()} == pids  # WORKER_STARTUP
    assert settled(spool)


@pytest.mark.parametrize("stop", ["SIGTERM to the command", "Ctrl+C to the process group"])
def test_a_stop_lets_the_running_task_finish_then_exits_0(
    spool: Path, client: SpoolClient, stop: str
) -> None:
    with WorkerRun([APP, "--workers", "1", "--shutdown-timeout", "20"], spool) as run:
        napping = client.send("nap", 1.5, "long")
        eventually(lambda: (spool / "started" / "long").exists(), what="the task to start")
        stopped_at = time.monotonic()
        if stop == "SIGTERM to the command":
            run.send_signal(signal.SIGTERM)
        else:
            run.send_signal_to_group(signal.SIGINT)
        run.wait_for_log("taking no more messages")
        client.send("record", "sent-after-the-stop")
        assert run.wait() == 0
        assert time.monotonic() - stopped_at < 15

    assert client.result(napping, timeout=0).return_value == "long"
    assert settled(spool)
    assert len(list((spool / "queue").iterdir())) == 1  # the later message was not taken
    if stop == "Ctrl+C to the process group":  # the worker got SIGINT, then SIGTERM
        assert "already stopping" in run.log


def test_a_second_signal_kills_the_workers_at_once(spool: Path, client: SpoolClient) -> None:
    with WorkerRun([APP, "--workers", "1", "--shutdown-timeout", "60"], spool) as run:
        client.send("nap", 60, "endless")
        started = spool / "started" / "endless"
        eventually(started.exists, what="the task to start")
        worker_pid = int(started.read_text())
        run.send_signal(signal.SIGINT)
        run.wait_for_log("SIGINT: stopping the workers")
        killed_at = time.monotonic()
        run.send_signal(signal.SIGINT)
        assert run.wait() == 128 + signal.SIGINT
        assert time.monotonic() - killed_at < 5
        assert not pid_is_alive(worker_pid)

    assert "SIGINT again: killing the workers" in run.log
    assert not settled(spool)  # the task never finished, its message stays unacknowledged


def test_a_killed_worker_is_restarted(spool: Path, client: SpoolClient) -> None:
    with WorkerRun([APP, "--workers", "2"], spool) as run:
        first_pids = {pid for _, pid in run.wait_for_starts(2)}
        victim = min(first_pids)
        os.kill(victim, signal.SIGKILL)
        starts = run.wait_for_starts(3)
        results = [client.result(client.send("record", f"after-{n}")) for n in range(6)]
        run.send_signal(signal.SIGTERM)
        assert run.wait() == 0

    replacement = starts[-1][1]
    assert replacement not in first_pids
    assert {result.return_value for result in results} <= (first_pids - {victim}) | {replacement}
    assert run.log.count(f"(pid {victim}) was killed by SIGKILL; restarting it in") == 1


def test_max_tasks_per_child_replaces_the_worker(spool: Path, client: SpoolClient) -> None:
    task_ids = [client.send("record", f"key-{n}") for n in range(5)]
    with WorkerRun([APP, "--workers", "1", "--max-tasks-per-child", "2"], spool) as run:
        pids = [client.result(task_id).return_value for task_id in task_ids]
        run.send_signal(signal.SIGTERM)
        assert run.wait() == 0

    assert sorted(Counter(pids).values()) == [1, 2, 2]
    assert run.log.count("reached --max-tasks-per-child; replacing it") == 2
    assert "was killed" not in run.log
    assert "exited with status" not in run.log


VERSIONED = """
from spool_app import broker


@broker.task(task_name="version")
def version() -> int:
    return {version}
"""


def test_reload_restarts_the_workers_when_code_changes(
    tmp_path: Path, spool: Path, client: SpoolClient
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    module = project / "versioned.py"
    module.write_text(VERSIONED.format(version=1))
    args = [APP, "versioned", "--workers", "1"]

    with WorkerRun(args, spool, cwd=project, TASKQ_WORKER_RELOAD="1") as run:
        assert client.result(client.send("version")).return_value == 1
        run.wait_for_starts(1)
        module.write_text(VERSIONED.format(version=2))
        later = time.time() + 2  # a distinct mtime even on coarse file systems
        os.utime(module, (later, later))
        run.wait_for_log("versioned.py changed: restarting the workers")
        run.wait_for_starts(2)
        assert client.result(client.send("version")).return_value == 2
        run.send_signal(signal.SIGTERM)
        assert run.wait() == 0


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_fs_discover_imports_the_tasks_modules_from_the_environment(
    tmp_path: Path, spool: Path, client: SpoolClient
) -> None:
    project = tmp_path / "project"
    write(
        project / "shop" / "tasks.py",
        """
        from spool_app import broker

        @broker.task(task_name="discovered")
        def discovered() -> str:
            return "found"
        """,
    )
    for hidden in (".cache/tasks.py", "venv/lib/tasks.py", "node_modules/x/tasks.py"):
        write(project / hidden, "raise RuntimeError('this module must not be imported')")
    (project / "venv" / "pyvenv.cfg").touch()
    env = {"TASKQ_WORKER_FS_DISCOVER": "1", "TASKQ_WORKER_WORKERS": "1"}

    with WorkerRun([APP], spool, cwd=project, **env) as run:
        assert client.result(client.send("discovered")).return_value == "found"
        assert len(run.wait_for_starts(1)) == 1
        run.send_signal(signal.SIGTERM)
        assert run.wait() == 0

    assert "Starting 1 worker process(es)" in run.log


def test_a_task_calling_sys_exit_fails_and_the_same_worker_runs_the_rest(
    spool: Path, client: SpoolClient
) -> None:
    leaving = client.send("leave")
    keys = {client.send("record", f"after-{n}"): f"after-{n}" for n in range(20)}

    with WorkerRun([APP, "--workers", "1"], spool) as run:
        ((_, pid),) = run.wait_for_starts(1)
        exited = client.result(leaving)
        results = {task_id: client.result(task_id) for task_id in keys}
        starts = run.started_workers()
        run.send_signal(signal.SIGTERM)
        assert run.wait() == 0

    assert starts == [("worker-0", pid)]  # never restarted
    assert exited.is_err
    assert isinstance(exited.error, TaskExitError)
    assert exited.error.exception == "SystemExit()"
    assert not any(result.is_err for result in results.values())
    assert {result.return_value for result in results.values()} == {pid}
    runs = sorted(path.name.split(".")[0] for path in (spool / "runs").iterdir())
    assert runs == sorted(keys.values())
    assert settled(spool)
