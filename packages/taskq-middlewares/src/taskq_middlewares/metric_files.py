"""Where the processes of one worker group keep their Prometheus metric files, and their cleanup.

prometheus-client's multiprocess mode has each process write its metrics to files in one
directory, ``PROMETHEUS_MULTIPROC_DIR``, and sums them when scraped. The processes of one
``taskq worker`` (one group, keyed by the manager's pid) share ``<root>/group-<manager pid>``;
a process on its own is a group by itself. Groups whose owner is dead are removed, and so are
the running-tasks gauges of dead processes, whose counters stay (a total never goes down
because a worker was restarted).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger("taskq.prometheus")

#: The variable prometheus-client reads; when the user sets it, that directory is used as is.
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Where the group directories go by default.
DEFAULT_ROOT = Path(tempfile.gettempdir()) / "taskq-prometheus"
_GROUP = re.compile(r"^group-(\d+)$")
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def prepare_directory(root: Path | None) -> Path:
    """Return this process's metrics directory, ready, and export it to prometheus-client."""
    given = os.environ.get(MULTIPROC_DIR_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        return directory
    from taskq.toolkit import WORKER_GROUP_ENV

    root = root or DEFAULT_ROOT
    group = os.environ.get(WORKER_GROUP_ENV)
    remove_dead_groups(root)
    directory = root / f"group-{group or os.getpid()}"
    if not group:  # a group of one: anything there is left from an earlier process
        shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_DIR_ENV] = str(directory)
    return directory


def remove_dead_groups(root: Path) -> None:
    """Delete the group directories under ``root`` whose owning process is gone."""
    if not root.is_dir():
        return
    for entry in root.iterdir():
        match = _GROUP.match(entry.name)
        if match and not is_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            logger.debug("Removed the metrics of a finished worker group: %s", entry)


def forget_dead_processes(directory: Path) -> None:
    """Delete the live-gauge files of processes that are gone (they would count as running)."""
    for entry in directory.glob("gauge_live*.db"):
        match = _LIVE_GAUGE_FILE.match(entry.name)
        if match and not is_alive(int(match.group(1))):
            entry.unlink(missing_ok=True)


def is_alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
