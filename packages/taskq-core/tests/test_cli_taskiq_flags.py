"""``taskq worker`` takes taskiq's worker flags, or refuses one with its reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from taskq.cli.options import WorkerOptions, parse_worker_args
from taskq.cli.refused_flags import REFUSED_FLAGS
from taskq.cli.reload import ChangeWatcher
from taskq.cli.worker_process import import_app


def parse(*argv: str, **environ: str) -> WorkerOptions:
    return parse_worker_args(list(argv), environ)


def test_taskiqs_flags_are_taken(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    options = parse(
        "app:broker",
        "--no-configure-logging",
        f"--app-dir={tmp_path}",
        f"--reload-dir={tmp_path}",
        "--reload-dir",
        str(other),
        "--max-async-tasks-jitter=3",
        "--no-parse",
        "--no-propagate-errors",
        "--do-not-use-gitignore",
    )
    assert (options.configure_logging, options.parse, options.propagate_errors) == (
        False,
        False,
        False,
    )
    assert options.app_dir == str(tmp_path)
    assert options.reload_dir == (str(tmp_path), str(other))
    assert options.max_async_tasks_jitter == 3
    assert options.do_not_use_gitignore is True
    assert parse("app:broker", "-d", str(tmp_path)).app_dir == str(tmp_path)


def test_the_defaults_keep_the_behaviour() -> None:
    options = parse("app:broker")
    assert (options.configure_logging, options.parse, options.propagate_errors) == (
        True,
        True,
        True,
    )
    assert (options.app_dir, options.reload_dir, options.max_async_tasks_jitter) == (None, (), 0)


def test_each_new_option_reads_its_environment_variable(tmp_path: Path) -> None:
    options = parse(
        "app:broker",
        TASKQ_WORKER_CONFIGURE_LOGGING="0",
        TASKQ_WORKER_APP_DIR=str(tmp_path),
        TASKQ_WORKER_RELOAD_DIR=f"{tmp_path}, {tmp_path}",
        TASKQ_WORKER_MAX_ASYNC_TASKS_JITTER="2",
        TASKQ_WORKER_PARSE="no",
        TASKQ_WORKER_PROPAGATE_ERRORS="off",
        TASKQ_WORKER_DO_NOT_USE_GITIGNORE="1",
    )
    assert options == WorkerOptions(
        broker="app:broker",
        configure_logging=False,
        app_dir=str(tmp_path),
        reload_dir=(str(tmp_path), str(tmp_path)),
        max_async_tasks_jitter=2,
        parse=False,
        propagate_errors=False,
        do_not_use_gitignore=True,
    )


def test_a_missing_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("app:broker", "--app-dir", str(tmp_path / "missing"))
    assert exited.value.code == 2
    assert "expected an existing directory" in capsys.readouterr().err


@pytest.mark.parametrize("flag", sorted(REFUSED_FLAGS))
def test_a_flag_taskq_cannot_honour_is_refused_with_its_reason(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("app:broker", flag, "2")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == f"taskq worker: {flag} is not supported: {REFUSED_FLAGS[flag]}\n"
    assert "unrecognized" not in err


def test_app_dir_is_where_the_broker_and_tasks_are_imported_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "appdir_broker.py").write_text(
        "from taskq_inmemory import InMemoryBroker\nbroker = InMemoryBroker()\n"
    )
    (tmp_path / "tasks.py").write_text(
        "from appdir_broker import broker\n\n@broker.task\nasync def job() -> None: ...\n"
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("appdir_broker", "tasks"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    options = parse("appdir_broker:broker", "--app-dir", str(tmp_path), "--fs-discover")
    broker = import_app(options, in_worker=False)
    assert "tasks:job" in broker.get_all_tasks()


@pytest.mark.parametrize(("flag", "configured"), [("--no-configure-logging", False), ("", True)])
def test_no_configure_logging_leaves_the_applications_logging(
    tmp_path: Path, flag: str, configured: bool
) -> None:
    (tmp_path / "quiet_app.py").write_text(
        "from taskq_inmemory import InMemoryBroker\nbroker = InMemoryBroker()\n"
    )
    probe = (
        "import logging, sys\n"
        "from taskq.cli import worker\n"
        "worker.run = lambda options: print(len(logging.getLogger().handlers)) or 0\n"
        "sys.exit(worker.main(sys.argv[1:]))\n"
    )
    argv = [sys.executable, "-c", probe, "quiet_app:broker", "-d", str(tmp_path)]
    out = subprocess.run(
        argv + ([flag] if flag else []), capture_output=True, text=True, check=True
    ).stdout
    assert (int(out) > 0) is configured


def test_reload_watches_every_reload_dir(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for directory in (first, second):
        directory.mkdir()
        (directory / "mod.py").write_text("x = 1\n")
    watcher = ChangeWatcher([first, second], interval_s=0)
    assert watcher.changed() is None
    (second / "mod.py").write_text("x = 22\n")
    assert watcher.changed() == second / "mod.py"
