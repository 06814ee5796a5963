"""Where the processes of one worker group keep their Prometheus metric files, and their cleanup.

prometheus-client's multiprocess mode has each process write its metrics to files in one
directory, ``PROMETHEUS_MULTIPROC_DIR``, and sums them when scraped. The processes of one
``taskq worker`` (one group, keyed by the manager's pid) share ``<root>/group-<manager pid>``;
a process on its own is a group by itself. Groups whose owner is dead are removed, and so are
the running-tasks gauges of dead processes, whose counters stay (a total never goes down
because a worker was restarted): the counter and histogram files of dead processes are merged
into one file per kind, so that a group whose workers were replaced 10,000 times
(``--max-tasks-per-child``, crashes) keeps a few files rather than 20,000, each read at
every scrape.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger("taskq.prometheus")

#: The variable prometheus-client reads; when the user sets it, that directory is used as is.
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Where the group directories go by default.
DEFAULT_ROOT = Path(tempfile.gettempdir()) / "taskq-prometheus"
_GROUP = re.compile(r"^group-(\d+)$")
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")
#: The files of one process whose values outlive it (totals never go down).
_SUMMED_FILE = re.compile(r"^(counter|histogram)_(\d+)\.db$")
#: Where the values of the dead processes of a group are summed, one file per kind (the
#: collector reads the kind from the name's first part, and ignores the rest for these kinds).
MERGED_FILE = "{kind}_merged.db"
#: Taken while files are merged and while a scrape reads them (not a ``.db``: not a metric).
_LOCK_FILE = "merge.lock"


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


def tidy(directory: Path) -> None:
    """Forget the running gauges of dead processes and merge their counters and histograms.

    Merging happens only in the group directories made here (``group-<pid>``), and not on
    Windows (no file locks to keep a scrape from reading a file being merged): a
    ``PROMETHEUS_MULTIPROC_DIR`` of your own may be shared by processes this one cannot see
    (another container), whose files would look like a dead process's.
    """
    with files_locked(directory):
        forget_dead_processes(directory)
        if _GROUP.match(directory.name) and sys.platform != "win32":
            merge_dead_processes(directory)


@contextlib.contextmanager
def files_locked(directory: Path) -> Iterator[None]:
    """Hold the group's merge lock: no file is replaced or removed by a merge meanwhile."""
    if sys.platform == "win32":  # no flock; nor are files merged (see `tidy`)
        yield
        return
    import fcntl

    with open(directory / _LOCK_FILE, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def merge_dead_processes(directory: Path) -> None:
    """Add the counter and histogram values of dead processes to the merged files; delete theirs.

    Call it holding `files_locked`. The merged file is written aside and swapped in before the
    dead files go: a crash between the two counts those processes twice, never zero times.
    """
    dead: dict[str, list[Path]] = defaultdict(list)
    for entry in directory.glob("*.db"):
        match = _SUMMED_FILE.match(entry.name)
        if match and not is_alive(int(match.group(2))):
            dead[match.group(1)].append(entry)
    for kind, files in dead.items():
        _merge_into(directory / MERGED_FILE.format(kind=kind), files)


def _merge_into(merged: Path, files: list[Path]) -> None:
    from prometheus_client.mmap_dict import MmapedDict

    totals: dict[str, float] = defaultdict(float)
    readable = []
    for path in [merged, *files]:
        try:
            # empty: its process died between creating and sizing it; nothing to add
            empty = path.stat().st_size == 0
            values = [] if empty else list(MmapedDict.read_all_values_from_file(str(path)))
        except FileNotFoundError:
            continue
        except Exception as exc:  # cut short or foreign: left for a person to look at
            logger.warning("Metrics: cannot read %s (%s); it is left as it is", path, exc)
            continue
        for key, value, _timestamp, _position in values:
            totals[key] += value
        readable.append(path)
    if not any(path != merged for path in readable):
        return
    aside = merged.with_name(merged.name + ".new")
    aside.unlink(missing_ok=True)
    out = MmapedDict(str(aside))
    try:
        for key, value in totals.items():
            out.write_value(key, value, 0.0)
    finally:
        out.close()
    os.replace(aside, merged)
    for path in readable:
        if path != merged:
            path.unlink(missing_ok=True)
