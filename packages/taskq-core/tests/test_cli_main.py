"""The `taskq` command: subcommands from the `taskq.cli` entry-point group, --help, --version."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

import taskq
from taskq.cli import main as dispatcher
from taskq.cli.main import ENTRY_POINT_GROUP, installed_subcommands, main


def fake_command(argv: list[str]) -> int:
    """Echo the arguments it was given.

    More lines the help does not show.
    """
    print("fake got", argv)
    return 7


class LoadedEntryPoint:
    """Stands for an installed entry point whose object is already at hand."""

    def __init__(self, command: Any) -> None:
        self.command = command

    def load(self) -> Any:
        return self.command


@pytest.fixture
def with_fake_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    commands: dict[str, Any] = dict(installed_subcommands())
    commands["fake"] = LoadedEntryPoint(fake_command)
    commands["broken"] = EntryPoint("broken", "no_such_module_here:main", ENTRY_POINT_GROUP)
    monkeypatch.setattr(dispatcher, "installed_subcommands", lambda: commands)


def test_core_registers_the_worker_subcommand() -> None:
    entry_point = installed_subcommands()["worker"]
    assert entry_point.value == "taskq.cli.worker:main"


def test_help_lists_the_installed_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: taskq")
    # names are padded to the longest installed one, so the spacing varies
    assert re.search(r"^  worker +Run worker processes that execute the tasks a broker", out, re.M)


def test_help_shows_the_first_docstring_line_of_each_subcommand(
    with_fake_commands: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-h"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  fake +Echo the arguments it was given\.$", out, re.M)
    assert "More lines" not in out
    assert re.search(r"^  broken +\(cannot be loaded: ModuleNotFoundError", out, re.M)


def test_a_subcommand_gets_the_remaining_arguments(
    with_fake_commands: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fake", "--help", "x"]) == 7
    assert capsys.readouterr().out == "fake got ['--help', 'x']\n"


def test_a_command_that_cannot_be_loaded_is_an_error(
    with_fake_commands: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["broken"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("taskq: error: command 'broken' cannot be loaded: ModuleNotFoundError")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"taskq {taskq.__version__}\n"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("usage: taskq")


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("taskq: error: unknown command 'schedule' (commands: ")
    assert "worker" in err


def test_worker_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: taskq worker")


def test_worker_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker"]) == 2
    assert "required: broker" in capsys.readouterr().err


def test_python_dash_m_and_the_console_script() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "taskq.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout == f"taskq {taskq.__version__}\n"
    script = shutil.which("taskq", path=str(Path(sys.executable).parent))
    assert script is not None, "the taskq console script is not installed next to python"
    completed = subprocess.run([script, "--help"], capture_output=True, text=True, check=True)
    assert "worker" in completed.stdout


def test_core_subcommands_run_as_core_registers_them() -> None:
    installed = installed_subcommands()
    for name, value in dispatcher.CORE_SUBCOMMANDS.items():
        assert installed[name].value == value, name


def test_a_core_subcommand_runs_without_reading_the_installed_metadata(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unread() -> dict[str, Any]:
        raise AssertionError("the installed distributions' metadata was read")

    monkeypatch.setattr(dispatcher, "installed_subcommands", unread)
    assert main(["worker", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: taskq worker")
