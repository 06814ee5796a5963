"""The entry points of the installed distributions in taskq's groups, read once per process.

Core looks in three groups, all named ``taskq.*``: the names ``from taskq import ...`` finds,
the CLI subcommands and the event store URL schemes. Reading every installed distribution's
metadata costs tens of milliseconds each time (a command such as ``taskq status`` would pay it
once per group), so one reading serves every group; `importlib.metadata` itself is imported
only then. That reading parses only the entry points of the distributions that declare a
``taskq.*`` group: a development environment holds a hundred and more distributions, most of
them with entry points of their own (console scripts, plugins), and parsing all of them, as
``importlib.metadata.entry_points()`` does, took twice as long.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

#: The prefix of every entry-point group core reads.
GROUP_PREFIX = "taskq."


@functools.cache
def _installed() -> tuple[EntryPoint, ...]:
    """The entry points of every group `GROUP_PREFIX` starts, in distribution order.

    A distribution installed twice on ``sys.path`` counts once, as the first copy that
    declares such a group (``entry_points()`` keeps the first copy).
    """
    from importlib.metadata import distributions  # a module that takes long to import

    found: list[EntryPoint] = []
    seen: set[str] = set()
    for distribution in distributions():
        declared = distribution.read_text("entry_points.txt")
        if not declared or f"[{GROUP_PREFIX}" not in declared:
            continue
        name = re.sub(r"[-_.]+", "-", distribution.metadata["Name"] or "").lower()
        if name in seen:
            continue
        seen.add(name)
        found += (p for p in distribution.entry_points if p.group.startswith(GROUP_PREFIX))
    return tuple(found)


def in_group(group: str) -> list[EntryPoint]:
    """The installed entry points of ``group``, as ``entry_points(group=group)`` lists them."""
    return [entry_point for entry_point in _installed() if entry_point.group == group]
