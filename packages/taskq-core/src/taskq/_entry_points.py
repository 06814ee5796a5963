"""The entry points of the installed distributions, read once per process.

Core looks in three groups: the names ``from taskq import ...`` finds, the CLI subcommands and
the event store URL schemes. Reading every installed distribution's metadata costs tens of
milliseconds each time (a command such as ``taskq status`` would pay it once per group), so
one reading serves every group; `importlib.metadata` itself is imported only then.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint


@functools.cache
def _installed() -> Any:
    """Every installed entry point (grouped on Python < 3.12, a flat `EntryPoints` after)."""
    from importlib.metadata import entry_points  # a module that takes long to import

    return entry_points()


def in_group(group: str) -> list[EntryPoint]:
    """The installed entry points of ``group``, as ``entry_points(group=group)`` lists them."""
    return list(_installed().select(group=group))
