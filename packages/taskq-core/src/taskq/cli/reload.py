"""``--reload``: notice that the project's Python files changed, by polling their mtimes."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from taskq.cli.discovery import python_files

logger = logging.getLogger("taskq.cli")

#: Seconds between two looks at the files.
RELOAD_POLL_INTERVAL_S = 1.0

_Snapshot = dict[Path, tuple[int, int]]


class ChangeWatcher:
    """Watches the ``*.py`` files under ``root`` (the ones `discovery.python_files` lists).

    `changed` compares the files with the last look, at most every ``interval_s`` seconds: a
    file added, removed, or with another modification time or size counts as a change.
    Polling needs no dependency and works on every file system, mounted volumes included.
    ``root`` may be several directories; a changed file's path is then given under its root
    (relative to the root when there is one).
    """

    def __init__(
        self, root: Path | Sequence[Path], interval_s: float = RELOAD_POLL_INTERVAL_S
    ) -> None:
        self.roots = [root] if isinstance(root, Path) else list(root)
        self.interval_s = interval_s
        self._snapshot = self._look()
        self._next_look = time.monotonic() + interval_s

    def seconds_to_next_look(self) -> float:
        """Return how long until `changed` looks at the files again."""
        return max(0.0, self._next_look - time.monotonic())

    def changed(self) -> Path | None:
        """Return a changed file since the last look (None: no change, or too soon to look)."""
        if time.monotonic() < self._next_look:
            return None
        self._next_look = time.monotonic() + self.interval_s
        before, self._snapshot = self._snapshot, self._look()
        for path in sorted(before.keys() | self._snapshot.keys()):
            if before.get(path) != self._snapshot.get(path):
                return path
        return None

    def _look(self) -> _Snapshot:
        snapshot: _Snapshot = {}
        for root in self.roots:
            for path in python_files(root):
                try:
                    stat = (root / path).stat()
                except OSError:  # removed since it was listed
                    continue
                snapshot[path if len(self.roots) == 1 else root / path] = (
                    stat.st_mtime_ns,
                    stat.st_size,
                )
        return snapshot
