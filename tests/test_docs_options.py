"""The docs' option tables list exactly what the commands accept: flags, variables, defaults.

Each table row names its flags (with their short forms), the environment variable of the
first one and the default; the row must match the command's parser, and every option the
parser takes must have a row. Commands without environment twins (``taskq dlq``,
``taskq cancel``) have each of their flags shown on their pages.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from taskq.cli import cancel, dlq, options, status
from taskq.cli.env_parser import show_default
from taskq.cli.refused_flags import REFUSED_FLAGS
from taskq.toolkit import EnvArgumentParser
from taskq_dashboard import cli as dashboard_cli
from taskq_scheduler import cli as scheduler_cli

ROOT = Path(__file__).resolve().parents[1]
#: command -> (page, heading of the section holding its table, its parser).
TABLES: dict[str, tuple[str, str, Callable[[], EnvArgumentParser]]] = {
    "worker": ("docs/worker.md", "## Options", options.build_parser),
    "status": ("docs/observability.md", "## `taskq status`", status.build_parser),
    "scheduler": (
        "docs/scheduler.md",
        "## The `taskq scheduler` command",
        scheduler_cli.build_parser,
    ),
    "dashboard": ("docs/dashboard.md", "## Start it", dashboard_cli.build_parser),
}
_CODE = re.compile(r"`([^`]+)`")


def section(page: str, heading: str) -> str:
    """The text of ``page`` from ``heading`` to the next heading of the same level."""
    text = (ROOT / page).read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ")[0]
    end = text.find(f"\n{level} ", start + len(heading) + 2)
    return text[start : end if end != -1 else None]


def table_rows(page: str, heading: str, columns: int = 4) -> list[list[str]]:
    """The cells of the section's rows of ``columns`` cells whose first cell is a flag."""
    rows = []
    for line in section(page, heading).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `-") and len(cells) == columns:
            rows.append(cells)
    return rows


def documented_flags(cell: str) -> list[str]:
    """The flags of a table cell: ```--workers N`, `-w N``` → ``["--workers", "-w"]``."""
    return [code.split()[0] for code in _CODE.findall(cell) if code.startswith("-")]


def parser_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options of ``parser`` a user may give: not ``--help``, not the hidden refusals."""
    return [
        action
        for action in parser._actions
        if action.option_strings
        and action.help is not argparse.SUPPRESS
        and not isinstance(action, argparse._HelpAction)
    ]


def shown_default(cell: str) -> object:
    """The default a table cell states, or ``...`` when it is prose (not checked)."""
    text = cell.strip("`").strip()
    if text in ("on", "off"):
        return text == "on"
    if text == "none":
        return None
    try:
        return float(text)
    except ValueError:
        pass
    return text if cell.startswith("`") else ...


@pytest.mark.parametrize("command", sorted(TABLES))
def test_the_option_table_lists_every_option_of_the_command(command: str) -> None:
    page, heading, build_parser = TABLES[command]
    rows = table_rows(page, heading)
    documented = {flag for row in rows for flag in documented_flags(row[0])}
    accepted = {
        flag
        for action in parser_options(build_parser())
        for flag in action.option_strings
        if not flag.startswith("--no-")
    }
    assert documented - {f for f in documented if f.startswith("--no-")} == accepted


@pytest.mark.parametrize("command", sorted(TABLES))
def test_each_row_names_the_variable_and_default_of_its_option(command: str) -> None:
    page, heading, build_parser = TABLES[command]
    parser = build_parser()
    actions = {flag: action for action in parser_options(parser) for flag in action.option_strings}
    for flags_cell, variable_cell, default_cell, *_ in table_rows(page, heading):
        flags = documented_flags(flags_cell)
        assert all(flag in actions for flag in flags), flags_cell
        assert [parser.env_variable(flags[0])] == _CODE.findall(variable_cell), flags_cell
        default = parser.defaults[actions[flags[0]].dest]
        stated = shown_default(default_cell)
        if stated is ...:
            continue
        if isinstance(stated, float) and not isinstance(default, bool):
            assert default == stated, flags_cell
        elif isinstance(stated, str):
            assert show_default(default) == stated, flags_cell
        else:
            assert default == stated, flags_cell


def test_the_refused_taskiq_flags_are_the_ones_the_worker_refuses() -> None:
    rows = table_rows("docs/worker.md", "## Options", columns=2)
    documented = {flag for flags_cell, _ in rows for flag in documented_flags(flags_cell)}
    assert documented == set(REFUSED_FLAGS)


@pytest.mark.parametrize(
    ("page", "parser"),
    [
        ("docs/redis.md", dlq._parser()),
        ("docs/amqp.md", dlq._parser()),
    ],
)
def test_the_dead_letter_command_shows_each_of_its_flags(
    page: str, parser: argparse.ArgumentParser
) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {
        flag
        for sub in subparsers.choices.values()
        for action in parser_options(sub)
        for flag in action.option_strings
    }
    assert flags == {"--count", "--after", "--all", "--app-dir", "-d"}
    assert all(flag in text for flag in flags)
    assert set(subparsers.choices) == {
        action for action in ("list", "show", "replay", "purge") if f"taskq dlq {action}" in text
    }


def test_the_cancel_command_shows_each_of_its_flags() -> None:
    text = (ROOT / "docs/controlling-tasks.md").read_text(encoding="utf-8")
    help_text = _help_of(cancel.main)
    for flag in re.findall(r"\[(--[a-z-]+)", help_text):
        assert flag in text


def _help_of(command: Callable[[list[str]], int]) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert command(["--help"]) == 0
    return out.getvalue()


@pytest.mark.parametrize("command", sorted(TABLES))
def test_the_help_states_each_default_once_and_as_the_docs_do(command: str) -> None:
    _, _, build_parser = TABLES[command]
    parser = build_parser()
    text = parser.format_help()
    assert "%%" not in text  # a %-style format is written with one %
    for action in parser_options(parser):
        assert action.help is not None
        assert action.help.count("(default: ") == 1, action.option_strings
        assert "(default: )" not in action.help, action.option_strings
        if action.dest in ("app_dir", "reload_dir"):
            assert "(default: the current directory)" in action.help
