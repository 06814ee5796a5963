"""The ``taskq`` command: dispatches to the subcommands installed in the ``taskq.cli`` group.

A distribution adds a subcommand with an entry point in that group, naming a callable
``main(argv: list[str]) -> int``; the first line of its docstring is the help line::

    [project.entry-points."taskq.cli"]
    scheduler = "taskq_scheduler.cli:main"
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from taskq import __version__
from taskq._entry_points import in_group

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

#: The entry-point group of the subcommands.
ENTRY_POINT_GROUP = "taskq.cli"
#: Core's own subcommands, as its entry points in `ENTRY_POINT_GROUP` name them: they run
#: without reading every installed distribution's metadata first, which would cost a quick
#: command such as ``taskq status --json`` a good part of its time.
CORE_SUBCOMMANDS = {
    "worker": "taskq.cli.worker:main",
    "status": "taskq.cli.status:main",
    "cancel": "taskq.cli.cancel:main",
    "dlq": "taskq.cli.dlq:main",
}
EXIT_USAGE = 2

Subcommand = Callable[[list[str]], int]


def main(argv: list[str] | None = None) -> int:
    """Run ``taskq`` with ``argv`` (default: the process's arguments); return the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(usage(), file=sys.stderr)
        return EXIT_USAGE
    if args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if args[0] in ("-V", "--version"):
        print(f"taskq {__version__}")
        return 0
    target: str | EntryPoint | None = CORE_SUBCOMMANDS.get(args[0])
    if target is None:
        commands = installed_subcommands()
        target = commands.get(args[0])
        if target is None:
            known = ", ".join(sorted(commands)) or "none installed"
            print(f"taskq: error: unknown command {args[0]!r} (commands: {known})", file=sys.stderr)
            return EXIT_USAGE
    try:
        command: Subcommand = load_subcommand(target)
    except Exception as exc:
        print(f"taskq: error: command {args[0]!r} cannot be loaded: {exc!r}", file=sys.stderr)
        return 1
    return command(args[1:])


def installed_subcommands() -> dict[str, EntryPoint]:
    """Return the subcommands the installed distributions register, by name."""
    commands: dict[str, EntryPoint] = {}
    for entry_point in in_group(ENTRY_POINT_GROUP):
        commands.setdefault(entry_point.name, entry_point)
    return commands


def load_subcommand(target: str | EntryPoint) -> Subcommand:
    """The subcommand an entry point or a ``module:attribute`` value (core's own) names."""
    if isinstance(target, str):
        module, _, attribute = target.partition(":")
        command: Subcommand = getattr(importlib.import_module(module), attribute)
        return command
    loaded: Subcommand = target.load()
    return loaded


def usage() -> str:
    """Return the help text of ``taskq``: the usage and each installed subcommand."""
    lines = [
        "usage: taskq [-h] [-V] <command> [<args>]",
        "",
        "taskq: an asynchronous distributed task queue.",
        "",
        "commands:",
    ]
    commands = installed_subcommands()
    width = max((len(name) for name in commands), default=0)
    for name, entry_point in sorted(commands.items()):
        lines.append(f"  {name:<{width}}  {help_line(entry_point)}")
    lines += [
        "",
        "options:",
        "  -h, --help     show this help and exit",
        "  -V, --version  show the version and exit",
        "",
        "Run `taskq <command> --help` for the options of a command.",
    ]
    return "\n".join(lines)


def help_line(entry_point: EntryPoint) -> str:
    """Return the first line of the subcommand's docstring (or why it cannot be loaded)."""
    try:
        command = entry_point.load()
    except Exception as exc:
        return f"(cannot be loaded: {type(exc).__name__}: {exc})"
    import inspect  # only for the help text

    doc = inspect.getdoc(command) or ""
    return doc.splitlines()[0] if doc else ""
