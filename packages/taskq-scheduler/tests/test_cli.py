"""``taskq scheduler``: options, their environment twins, targets, and a run in this process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import pytest

from taskq.cli.main import installed_subcommands
from taskq.testing import eventually
from taskq.toolkit import TargetError
from taskq_scheduler import cli
from taskq_scheduler.cli import SchedulerOptions, parse_scheduler_args


def parse(*argv: str, **environ: str) -> SchedulerOptions:
    return parse_scheduler_args(list(argv), environ)


def test_defaults() -> None:
    options = parse("app:scheduler")
    assert options == SchedulerOptions(scheduler="app:scheduler")
    assert options.skip_first_run is False
    assert options.update_interval == 60.0
    assert options.tz == "UTC"
    assert options.log_level == "INFO"


def test_every_flag() -> None:
    options = parse(
        "app:scheduler",
        "app.tasks",
        "--skip-first-run",
        "--update-interval=2.5",
        "--tz=Europe/Paris",
        "--log-level=debug",
        "--fs-discover",
        "--tasks-pattern=jobs/*.py",
    )
    assert options == SchedulerOptions(
        scheduler="app:scheduler",
        modules=("app.tasks",),
        skip_first_run=True,
        update_interval=2.5,
        tz="Europe/Paris",
        log_level="DEBUG",
        fs_discover=True,
        tasks_pattern=("jobs/*.py",),
    )


def test_environment_twins_and_the_command_line_wins() -> None:
    environ = {
        "TASKQ_SCHEDULER_SKIP_FIRST_RUN": "yes",
        "TASKQ_SCHEDULER_UPDATE_INTERVAL": "5",
        "TASKQ_SCHEDULER_TZ": "+02:00",
        "TASKQ_SCHEDULER_LOG_LEVEL": "warning",
    }
    options = parse("app:scheduler", **environ)
    assert (options.skip_first_run, options.update_interval, options.tz, options.log_level) == (
        True,
        5.0,
        "+02:00",
        "WARNING",
    )
    options = parse(
        "app:scheduler", "--no-skip-first-run", "--update-interval=7", "--tz=UTC", **environ
    )
    assert (options.skip_first_run, options.update_interval, options.tz) == (False, 7.0, "UTC")


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--update-interval=0"], {}, "seconds > 0"),
        (["--update-interval=soon"], {}, "seconds"),
        (["--tz=Mars/Olympus"], {}, "not a timezone"),
        (["--log-level=loud"], {}, "expected one of"),
        ([], {"TASKQ_SCHEDULER_TZ": "Nowhere"}, "TASKQ_SCHEDULER_TZ"),
        ([], {"TASKQ_SCHEDULER_SKIP_FIRST_RUN": "maybe"}, "TASKQ_SCHEDULER_SKIP_FIRST_RUN"),
    ],
)
def test_bad_values_are_usage_errors(
    argv: list[str], environ: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse("app:scheduler", *argv, **environ)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_help_shows_each_twin(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for variable in ("SKIP_FIRST_RUN", "UPDATE_INTERVAL", "TZ", "LOG_LEVEL"):
        assert f"[TASKQ_SCHEDULER_{variable}]" in text


def test_the_subcommand_is_registered() -> None:
    assert installed_subcommands()["scheduler"].load() is cli.main


def test_targets(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "target_app.py").write_text(
        "from taskq_inmemory import InMemoryBroker\n"
        "from taskq_scheduler import TaskiqScheduler\n"
        "broker = InMemoryBroker()\n"
        "scheduler = TaskiqScheduler(broker, [])\n"
        "def factory():\n"
        "    return scheduler\n"
    )
    (tmp_path / "target_tasks.py").write_text(
        "from target_app import broker\n@broker.task(task_name='t')\nasync def t(): ...\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "configure_logging", lambda level, log_format: None)
    found = cli.import_scheduler(SchedulerOptions("target_app:factory", modules=("target_tasks",)))
    assert found.broker.is_scheduler_process
    assert found.broker.find_task("t") is not None
    with pytest.raises(TargetError, match="not a TaskiqScheduler"):
        cli.import_scheduler(SchedulerOptions("target_app:broker"))
    assert cli.main(["target_app:nothing"]) == 2


def test_a_taskiq_scheduler_says_to_import_from_taskq(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("taskiq")
    (tmp_path / "taskiq_app.py").write_text(
        "from taskiq import InMemoryBroker, TaskiqScheduler\n"
        "scheduler = TaskiqScheduler(InMemoryBroker(), [])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TargetError) as error:
        cli.import_scheduler(SchedulerOptions("taskiq_app:scheduler"))
    assert str(error.value) == (
        "'taskiq_app:scheduler' is a taskiq scheduler "
        "(taskiq.scheduler.scheduler.TaskiqScheduler); taskq needs its own: "
        "change `from taskiq import ...` to `from taskq import ...`"
    )


async def test_serve_runs_until_a_signal_and_shuts_down(tmp_path: Any) -> None:
    from taskq_inmemory import InMemoryBroker
    from taskq_scheduler import InMemoryScheduleSource, TaskiqScheduler

    events: list[str] = []

    class Source(InMemoryScheduleSource):
        async def startup(self) -> None:
            events.append("source up")

        async def shutdown(self) -> None:
            events.append("source down")

    scheduler = TaskiqScheduler(InMemoryBroker(), [Source()])
    serving = asyncio.create_task(cli.serve(scheduler, SchedulerOptions("x:y")))
    await eventually(lambda: events == ["source up"])
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(serving, 30) == 0
    assert events == ["source up", "source down"]


async def test_a_failing_startup_exits_with_status_1() -> None:
    from taskq_inmemory import InMemoryBroker
    from taskq_scheduler import InMemoryScheduleSource, TaskiqScheduler

    class Broken(InMemoryScheduleSource):
        async def startup(self) -> None:
            raise ConnectionError("store down")

    scheduler = TaskiqScheduler(InMemoryBroker(), [Broken()])
    assert await cli.serve(scheduler, SchedulerOptions("x:y")) == 1


def test_a_taskiq_scheduler_command_line_runs_from_its_app_directory(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_dir = tmp_path / "src"
    (app_dir / "dir_app_jobs").mkdir(parents=True)
    (app_dir / "dir_app_jobs" / "__init__.py").write_text("")
    (app_dir / "dir_app.py").write_text(
        "from taskq_inmemory import InMemoryBroker\n"
        "from taskq_scheduler import TaskiqScheduler\n"
        "broker = InMemoryBroker()\n"
        "scheduler = TaskiqScheduler(broker, [])\n"
    )
    (app_dir / "dir_app_jobs" / "tasks.py").write_text(
        "from dir_app import broker\n@broker.task(task_name='nightly')\nasync def nightly(): ...\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    options = parse(
        "dir_app:scheduler", "-d", "src", "-fsd", "--no-configure-logging", "--loop-interval", "1"
    )
    assert options.app_dir == "src"
    assert options.configure_logging is False
    found = cli.import_scheduler(options)
    assert found.broker.find_task("nightly") is not None  # discovered under src/
    assert parse("app:s", TASKQ_SCHEDULER_APP_DIR="src").app_dir == "src"
