"""``taskq dlq`` and ``taskq cancel`` import the broker from ``--app-dir``/``-d``."""

from __future__ import annotations

import asyncio
import re
import sys
import textwrap
from pathlib import Path

import pytest

from taskq.cli import cancel, dlq
from taskq.cli.main import main as taskq_main

APP = """
from datetime import datetime, timezone

from taskq.abc.dead_letters import DeadLetter, DeadLetterQueue
from taskq_inmemory import InMemoryBroker


class Letters(DeadLetterQueue):
    def __init__(self):
        self.letters = {"dl-1": DeadLetter("dl-1", None, "rejected", None, 1)}

    @property
    def where(self):
        return "the app's list"

    async def count(self):
        return len(self.letters)

    async def list(self, count=100, after=None):
        return list(self.letters.values())[:count]

    async def show(self, dead_letter_id):
        return self.letters.get(dead_letter_id)

    async def replay(self, dead_letter_ids=None):
        return await self.purge(dead_letter_ids)

    async def purge(self, dead_letter_ids=None):
        ids = list(self.letters) if dead_letter_ids is None else list(dead_letter_ids)
        return sum(self.letters.pop(i, None) is not None for i in ids)


broker = InMemoryBroker()
broker.dead_letters = Letters()
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A module in ``tmp_path/app`` while the current directory is ``tmp_path/elsewhere``."""
    name = f"cli_app_dir_{tmp_path.name.replace('-', '_')}"
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / f"{name}.py").write_text(textwrap.dedent(APP))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield name, str(tmp_path / "app")
    sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("action", "out"),
    [
        (["list"], "1 of 1 dead letter(s) in the app's list"),
        (["show", "dl-1"], "reason:      rejected"),
        (["replay", "dl-1"], "replayed 1 dead letter(s)"),
        (["purge", "--all"], "purged 1 dead letter(s)"),
    ],
)
@pytest.mark.parametrize("flag", ["--app-dir", "-d"])
def test_dlq_imports_the_broker_from_the_app_directory(
    app: tuple[str, str], flag: str, action: list[str], out: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name, app_dir = app
    assert dlq.main([action[0], f"{name}:broker", *action[1:], flag, app_dir]) == 0
    captured = capsys.readouterr()
    assert out in captured.out, captured.err


@pytest.mark.parametrize("flag", ["--app-dir", "-d"])
def test_cancel_imports_the_broker_from_the_app_directory(
    app: tuple[str, str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name, app_dir = app
    assert cancel.main([f"{name}:broker", "t1", flag, app_dir, "--reason", "typo"]) == 0
    assert capsys.readouterr().out == "cancelled t1\n"
    store = sys.modules[name].broker.cancellation
    assert asyncio.run(store.cancellation("t1")).reason == "typo"


def test_without_it_the_broker_is_looked_for_in_the_current_directory(
    app: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    name, _ = app
    assert dlq.main(["list", f"{name}:broker"]) == 2
    assert cancel.main([f"{name}:broker", "t1"]) == 2
    assert capsys.readouterr().err.count(f"no module named {name!r}") == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "app:broker", "-d", "no/such/dir"],
        ["cancel", "app:broker", "t1", "-d", "no/such/dir"],
    ],
)
def test_a_directory_that_does_not_exist_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    command = cancel.main if argv[0] == "cancel" else dlq.main
    assert command(argv[1:] if argv[0] == "cancel" else argv) == 2
    assert "argument --app-dir/-d: expected an existing directory, got 'no/such/dir'" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("action", "out"),
    [
        (["list"], "1 of 1 dead letter(s) in the app's list"),
        (["show", "dl-1"], "reason:      rejected"),
        (["replay", "dl-1"], "replayed 1 dead letter(s)"),
        (["purge", "--all"], "purged 1 dead letter(s)"),
    ],
)
@pytest.mark.parametrize("flag", ["--app-dir", "-d"])
@pytest.mark.parametrize("where", ["before the action", "after the action"])
def test_taskq_dlq_takes_the_app_directory_before_or_after_the_action(
    app: tuple[str, str],
    where: str,
    flag: str,
    action: list[str],
    out: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, app_dir = app
    command = [action[0], f"{name}:broker", *action[1:]]
    option = [flag, app_dir]
    argv = option + command if where == "before the action" else command + option
    assert taskq_main(["dlq", *argv]) == 0
    captured = capsys.readouterr()
    assert out in captured.out, captured.err


def test_taskq_dlq_takes_the_app_directory_given_after_the_action_over_one_before(
    app: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, app_dir = app
    argv = ["dlq", "-d", str(tmp_path / "elsewhere"), "list", f"{name}:broker", "-d", app_dir]
    assert taskq_main(argv) == 0
    assert "1 of 1 dead letter(s)" in capsys.readouterr().out


def test_taskq_dlq_refuses_a_missing_app_directory_before_the_action(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert taskq_main(["dlq", "-d", "no/such/dir", "list", "app:broker"]) == 2
    assert "argument --app-dir/-d: expected an existing directory, got 'no/such/dir'" in (
        capsys.readouterr().err
    )


def test_taskq_dlq_help_shows_the_app_directory_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert taskq_main(["dlq", "--help"]) == 0
    shown = capsys.readouterr().out
    assert "usage: taskq dlq [-h] [--app-dir DIR] ACTION" in shown
    # the option's own line: "--app-dir DIR, -d DIR" before Python 3.13, "--app-dir, -d DIR" after
    assert re.search(r"^\s+--app-dir( DIR)?, -d DIR\s+directory to import", shown, re.MULTILINE)
