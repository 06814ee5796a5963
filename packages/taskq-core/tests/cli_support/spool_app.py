"""The app the worker tests run: a spool broker (root from ``TASKQ_TEST_SPOOL``) and tasks."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from spool import SpoolBroker

from taskq import TaskiqEvents, TaskiqState

SPOOL = Path(os.environ.get("TASKQ_TEST_SPOOL", "spool"))
broker = SpoolBroker(SPOOL)


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
def note_startup(state: TaskiqState) -> None:
    """Leave a file per worker start, named after its pid."""
    starts = SPOOL / "starts"
    starts.mkdir(exist_ok=True)
    (starts / str(os.getpid())).touch()


@broker.task(task_name="record")
def record(key: str) -> int:
    """Note one run of ``key`` (a file per run) and return the pid that ran it."""
    runs = SPOOL / "runs"
    runs.mkdir(exist_ok=True)
    (runs / f"{key}.{os.getpid()}.{time.time_ns()}").touch()
    return os.getpid()


@broker.task(task_name="nap")
async def nap(seconds: float, key: str) -> str:
    """Mark ``key`` as started, sleep, and return ``key``."""
    started = SPOOL / "started"
    started.mkdir(exist_ok=True)
    written = started / f".{key}"
    written.write_text(str(os.getpid()))
    written.replace(started / key)  # whole: a reader never sees the file empty
    await asyncio.sleep(seconds)
    return key


@broker.task(task_name="leave")
def leave() -> None:
    """Call ``sys.exit()``, as a task should not."""
    sys.exit()
