"""The entry points core reads: only the ``taskq.*`` groups, the same as ``entry_points()``."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from taskq._entry_points import in_group


@pytest.mark.parametrize("group", ["taskq.names", "taskq.cli", "taskq.event_stores"])
def test_a_group_lists_what_entry_points_lists(group: str) -> None:
    expected = [(point.name, point.value, point.dist) for point in entry_points(group=group)]
    found = [(point.name, point.value, point.dist) for point in in_group(group)]
    assert [f[:2] for f in found] == [e[:2] for e in expected]
    assert [f[2].name for f in found] == [e[2].name for e in expected]  # type: ignore[union-attr]


def test_core_s_own_subcommands_are_found() -> None:
    assert {"worker", "status"} <= {point.name for point in in_group("taskq.cli")}


def test_a_group_that_is_not_taskq_s_is_not_read() -> None:
    assert entry_points(group="console_scripts")
    assert in_group("console_scripts") == []
