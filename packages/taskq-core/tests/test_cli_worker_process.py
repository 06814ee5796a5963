"""One worker process's steps, run in this process: importing the app, the receiver, stopping."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq import AsyncKicker, AsyncTaskiqTask
from taskq.cli import worker, worker_process
from taskq.cli.options import WorkerOptions
from taskq.cli.worker_process import (
    EXIT_REFUSED,
    EXIT_STARTUP_FAILED,
    StopRequest,
    import_app,
    run_receiver,
    run_worker,
    serve,
    task_modules,
)
from taskq.testing import eventually

SUPPORT_DIR = Path(__file__).resolve().parent / "cli_support"
if str(SUPPORT_DIR) not in sys.path:
    sys.path.insert(0, str(SUPPORT_DIR))

from spool import SpoolBroker  # noqa: E402


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory holds an app module and a discoverable tasks module."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "cli_wp_app.py").write_text(
        textwrap.dedent(
            """
            from taskq import InMemoryBroker

            broker = InMemoryBroker()
            seen_as_worker = []
            """
        )
    )
    (tmp_path / "cli_wp_pkg").mkdir()
    (tmp_path / "cli_wp_pkg" / "tasks.py").write_text(
        textwrap.dedent(
            """
            from cli_wp_app import broker, seen_as_worker

            seen_as_worker.append(broker.is_worker_process)

            @broker.task(task_name="discovered")
            def discovered() -> str:
                return "found"
            """
        )
    )
    return tmp_path


def test_task_modules_given_then_discovered(app_dir: Path) -> None:
    options = WorkerOptions("cli_wp_app:broker", modules=("cli_wp_app",))
    assert task_modules(options) == ["cli_wp_app"]
    discovering = WorkerOptions("cli_wp_app:broker", modules=("cli_wp_app",), fs_discover=True)
    assert task_modules(discovering) == ["cli_wp_app", "cli_wp_pkg.tasks"]


def test_the_broker_is_a_worker_before_the_tasks_are_imported(app_dir: Path) -> None:
    options = WorkerOptions("cli_wp_app:broker", fs_discover=True)
    broker = import_app(options, in_worker=True)
    assert broker.is_worker_process
    assert "discovered" in broker.get_all_tasks()
    assert sys.modules["cli_wp_app"].seen_as_worker == [True]


async def test_a_stop_request_is_taken_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="taskq.worker")
    stop = StopRequest()
    stop.request("SIGTERM")
    stop.request("SIGINT")
    assert stop.event.is_set()
    assert "SIGTERM: stopping" in caplog.text
    assert "SIGINT: already stopping" in caplog.text


class NapApp:
    """A spool broker with one task, ``nap``, that says when it starts and when it is done."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.broker = SpoolBroker(root)
        self.started = asyncio.Event()
        self.done: list[str] = []

        @self.broker.task(task_name="nap")
        async def nap(seconds: float, key: str) -> str:
            self.started.set()
            await asyncio.sleep(seconds)
            self.done.append(key)
            return key

    async def send(self, seconds: float, key: str) -> AsyncTaskiqTask[Any]:
        return await AsyncKicker("nap", self.broker, {}).kiq(seconds, key)

    def unacknowledged(self) -> int:
        return len(list(self.root.glob("claimed/*/*")))

    def queued(self) -> int:
        return len(list((self.root / "queue").iterdir()))


async def test_a_stop_waits_for_the_running_task(tmp_path: Path) -> None:
    app = NapApp(tmp_path)
    task = await app.send(0.3, "short")
    stop = StopRequest()
    options = WorkerOptions("x:broker", shutdown_timeout=5)
    running = asyncio.create_task(run_receiver(app.broker, options, stop))
    await app.started.wait()
    stop.request("test")
    assert await running == 0  # nothing abandoned
    assert app.done == ["short"]
    assert (await task.get_result()).return_value == "short"
    assert app.unacknowledged() == 0


async def test_tasks_past_the_shutdown_timeout_are_abandoned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = NapApp(tmp_path)
    await app.send(30, "long")
    stop = StopRequest()
    options = WorkerOptions("x:broker", shutdown_timeout=0.2)
    running = asyncio.create_task(run_receiver(app.broker, options, stop))
    await app.started.wait()
    stop.request("test")
    assert await running == 1
    assert "1 task(s) did not finish within the shutdown timeout (0.2 s)" in caplog.text
    assert app.done == []
    assert app.unacknowledged() == 1


async def test_the_task_limit_ends_the_receiver(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskq.worker")
    app = NapApp(tmp_path)
    for key in "abc":
        await app.send(0, key)
    options = WorkerOptions("x:broker", max_tasks_per_child=2)
    assert await run_receiver(app.broker, options, StopRequest()) == 0
    assert app.done == ["a", "b"]
    assert "Ran 2 tasks (--max-tasks-per-child); exiting" in caplog.text
    assert app.queued() == 1


@pytest.fixture(autouse=True)
def unfreeze_after() -> Iterator[None]:
    """Give the test process's objects back to the garbage collector after a `serve`."""
    yield
    gc.unfreeze()


@pytest.fixture
def no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the test's logging capture: a worker would replace the root handlers."""
    monkeypatch.setattr(worker_process, "configure_logging", lambda level, log_format: None)
    monkeypatch.setattr(worker, "configure_logging", lambda level, log_format: None)


async def test_serve_runs_until_sigterm(app_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="taskq.worker")
    (app_dir / "cli_wp_spool_app.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            from spool import SpoolBroker

            broker = SpoolBroker(Path({str(app_dir / "spool")!r}))

            @broker.task(task_name="add")
            def add(a: int, b: int) -> int:
                return a + b
            """
        )
    )
    serving = asyncio.create_task(serve(WorkerOptions("cli_wp_spool_app:broker")))
    client = SpoolBroker(app_dir / "spool")
    task = await AsyncKicker("add", client, {}).kiq(2, 3)
    assert (await task.wait_result(check_interval=0.01, timeout=10)).return_value == 5
    os.kill(os.getpid(), signal.SIGTERM)
    assert await serving == (0, 0)
    assert "Started (pid" in caplog.text
    assert "SIGTERM: stopping" in caplog.text


async def test_a_started_worker_moves_its_start_up_objects_out_of_the_collector_s_way(
    app_dir: Path,
) -> None:
    gc.unfreeze()
    serving = asyncio.create_task(serve(WorkerOptions("cli_wp_app:broker")))
    await eventually(lambda: gc.get_freeze_count() > 0, timeout=10)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await serving == (0, 0)


@pytest.mark.parametrize(
    ("error", "status"),
    [("SecurityError", EXIT_REFUSED), ("ListenError", EXIT_STARTUP_FAILED)],
    ids=["refused-settings", "cannot-start"],
)
async def test_a_broker_refusing_to_start_is_one_error_line(
    app_dir: Path, caplog: pytest.LogCaptureFixture, error: str, status: int
) -> None:
    module = f"cli_wp_refusing_{error.lower()}_app"
    (app_dir / f"{module}.py").write_text(
        textwrap.dedent(
            f"""
            from taskq import InMemoryBroker
            from taskq.exceptions import {error}

            class RefusingBroker(InMemoryBroker):
                async def startup(self) -> None:
                    raise {error}("refusing to bind 0.0.0.0 without authentication")

            broker = RefusingBroker()
            """
        )
    )
    assert await serve(WorkerOptions(f"{module}:broker")) == (status, 0)
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.getMessage() for record in errors] == [
        "The broker could not start: refusing to bind 0.0.0.0 without authentication"
    ]
    assert errors[0].exc_info is None


async def test_serve_with_a_bad_target(caplog: pytest.LogCaptureFixture) -> None:
    assert await serve(WorkerOptions("cli_wp_absent:broker")) == (2, 0)
    assert "no module named 'cli_wp_absent'" in caplog.text


def test_run_worker_exits_with_the_status(no_logging_setup: None) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_worker(WorkerOptions("cli_wp_absent:broker"))
    assert exit_info.value.code == 2


def test_the_command_checks_the_target_first(
    no_logging_setup: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert worker.main(["cli_wp_absent:broker"]) == 2
    assert capsys.readouterr().err.startswith("taskq worker: error: no module named")


async def test_a_worker_stops_when_its_manager_is_gone(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskq.worker")
    monkeypatch.setattr(worker_process, "PARENT_CHECK_INTERVAL_S", 0.01)
    stop = StopRequest()
    await worker_process._stop_when_orphaned(stop, manager_pid=-1)
    assert stop.event.is_set()
    assert "the manager (pid -1) is gone: stopping" in caplog.text
