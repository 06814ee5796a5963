"""Which files are project code: modules for ``--fs-discover``, files for ``--reload`` to watch.

The walk starts at a root directory (the current one) and never enters hidden directories,
``__pycache__``, ``node_modules``, ``site-packages`` or virtual environments (directories
holding a ``pyvenv.cfg``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

logger = logging.getLogger("taskq.cli")

#: The pattern ``--fs-discover`` uses when no ``--tasks-pattern`` is given.
DEFAULT_TASKS_PATTERN = "**/tasks.py"
_SKIPPED_DIRECTORIES = frozenset({"__pycache__", "node_modules", "site-packages"})


def python_files(root: Path) -> Iterator[Path]:
    """Yield the ``*.py`` files under ``root`` (paths relative to it), project code only."""
    for directory, subdirectories, files in os.walk(root):
        here = Path(directory)
        subdirectories[:] = sorted(d for d in subdirectories if _is_project_directory(here / d))
        for name in sorted(files):
            if name.endswith(".py"):
                yield (here / name).relative_to(root)


def discover_modules(root: Path, patterns: Iterable[str]) -> list[str]:
    """Return the names of the modules under ``root`` whose path matches one of ``patterns``.

    Patterns are globs on the path relative to ``root``: ``*`` and ``?`` stay within one
    directory, ``**/`` spans any number of them (``**/tasks.py`` includes ``./tasks.py``).
    """
    matchers = [_glob_to_regex(pattern) for pattern in patterns]
    names: list[str] = []
    for path in python_files(root):
        if any(matcher.fullmatch(path.as_posix()) for matcher in matchers):
            name = module_name(path)
            if name is None:
                logger.warning("Skipping %s: its path is not an importable module name", path)
            elif name not in names:
                names.append(name)
    return names


def module_name(path: Path) -> str | None:
    """Return the module name of ``path`` (relative, ``a/b/c.py`` → ``a.b.c``), or None."""
    parts = [*path.parent.parts, path.stem]
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or not all(part.isidentifier() for part in parts):
        return None
    return ".".join(parts)


def _is_project_directory(path: Path) -> bool:
    return (
        not path.name.startswith(".")
        and path.name not in _SKIPPED_DIRECTORIES
        and not (path / "pyvenv.cfg").exists()
    )


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        if token == "**/":
            parts.append("(?:.*/)?")
        elif token == "**":
            parts.append(".*")
        elif token == "*":
            parts.append("[^/]*")
        elif token == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts))
