"""The process manager on its own, in this process, with stand-in worker processes."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taskq.cli import process_manager
from taskq.cli.options import WorkerOptions
from taskq.cli.process_manager import ProcessManager
from taskq.cli.reload import ChangeWatcher

SUPPORT_DIR = Path(__file__).resolve().parent / "cli_support"
if str(SUPPORT_DIR) not in sys.path:
    sys.path.insert(0, str(SUPPORT_DIR))

import fake_workers  # noqa: E402
from worker_run import eventually  # noqa: E402

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]


@pytest.fixture
def starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The directory where the stand-in workers note their starts (inherited by them)."""
    directory = tmp_path / "starts"
    directory.mkdir()
    monkeypatch.setenv("TASKQ_TEST_STARTS", str(directory))
    monkeypatch.setattr(process_manager, "FIRST_RESTART_DELAY_S", 0.05)
    # the manager exports its group to its workers; undone after the test
    monkeypatch.setenv(process_manager.WORKER_GROUP_ENV, "unset")
    return directory


@pytest.fixture(autouse=True)
def info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="taskq.cli")


def pids(starts: Path) -> list[int]:
    return [int(path.name) for path in starts.iterdir()]


def run_manager(manager: ProcessManager, steps: Callable[[], None]) -> int:
    """Run ``manager`` here while ``steps`` (which must end with a stop signal) run beside."""
    thread = threading.Thread(target=steps, daemon=True)
    thread.start()
    try:
        return manager.run()
    finally:
        thread.join(30)


def stop_with(signum: int) -> None:
    os.kill(os.getpid(), signum)


def options(workers: int = 2, **values: Any) -> WorkerOptions:
    return WorkerOptions("app:broker", workers=workers, **values)


def test_a_signal_stops_every_worker_and_the_status_is_0(
    starts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handler_before = signal.getsignal(signal.SIGTERM)
    manager = ProcessManager(options(workers=2), target=fake_workers.stops_on_sigterm)

    def steps() -> None:
        eventually(lambda: len(pids(starts)) == 2, what="two starts")
        stop_with(signal.SIGINT)

    assert run_manager(manager, steps) == 0
    assert "SIGINT: stopping the workers" in caplog.text
    groups = {path.read_text() for path in starts.iterdir()}
    assert groups == {str(os.getpid())}  # both workers know their manager's group
    assert all(slot.process is None for slot in manager.slots)
    assert signal.getsignal(signal.SIGTERM) == handler_before


def test_a_worker_that_dies_is_restarted_once_logged(
    starts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = ProcessManager(options(workers=2), target=fake_workers.stops_on_sigterm)

    def steps() -> None:
        first = eventually(lambda: len(pids(starts)) == 2 and pids(starts), what="two starts")
        os.kill(first[0], signal.SIGKILL)
        eventually(lambda: len(pids(starts)) == 3, what="a restart")
        stop_with(signal.SIGTERM)

    assert run_manager(manager, steps) == 0
    assert caplog.text.count("was killed by SIGKILL; restarting it in 0.05 s") == 1


def test_quick_failures_double_the_restart_delay(
    starts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = ProcessManager(options(workers=1), target=fake_workers.exits_with_3)

    def steps() -> None:
        eventually(lambda: len(pids(starts)) >= 3, what="two restarts")
        stop_with(signal.SIGTERM)

    assert run_manager(manager, steps) == 0
    assert "worker-0 (pid " in caplog.text
    assert "exited with status 3; restarting it in 0.05 s" in caplog.text
    assert "exited with status 3; restarting it in 0.1 s" in caplog.text


def test_a_worker_done_with_its_tasks_is_replaced_at_once(
    starts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    worker_options = options(workers=1, max_tasks_per_child=10)
    manager = ProcessManager(worker_options, target=fake_workers.exits_with_0)

    def steps() -> None:
        eventually(lambda: len(pids(starts)) >= 3, what="two replacements")
        stop_with(signal.SIGTERM)

    assert run_manager(manager, steps) == 0
    assert "reached --max-tasks-per-child; replacing it" in caplog.text
    assert "restarting it in" not in caplog.text


def test_a_worker_that_does_not_stop_in_time_is_killed(
    starts: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process_manager, "STOP_MARGIN_S", 0.2)
    worker_options = options(workers=1, shutdown_timeout=0)
    manager = ProcessManager(worker_options, target=fake_workers.ignores_sigterm)

    def steps() -> None:
        eventually(lambda: pids(starts), what="a start")
        stop_with(signal.SIGTERM)

    assert run_manager(manager, steps) == 1
    assert "did not stop in time; killing it" in caplog.text


def test_a_code_change_restarts_every_worker(
    starts: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    module = project / "app.py"
    module.write_text("x = 1\n")
    watcher = ChangeWatcher(project, interval_s=0.05)
    manager = ProcessManager(options(workers=2), fake_workers.stops_on_sigterm, watcher)

    def steps() -> None:
        eventually(lambda: len(pids(starts)) == 2, what="two starts")
        module.write_text("x = 22\n")
        eventually(lambda: len(pids(starts)) == 4, what="two restarts")
        stop_with(signal.SIGTERM)

    assert run_manager(manager, steps) == 0
    assert "app.py changed: restarting the workers" in caplog.text
    assert "restarting it in" not in caplog.text  # a reload is no crash
