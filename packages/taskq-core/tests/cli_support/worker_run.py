"""Running ``taskq worker`` as a real process in the tests, and reading what it logs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from spool import SpoolBroker

from taskq import AsyncKicker, TaskiqResult
from taskq.testing import eventually_blocking

#: This directory: the worker processes import ``spool`` and ``spool_app`` from it.
SUPPORT_DIR = Path(__file__).resolve().parent
#: Seconds a test waits for something to happen before it fails.
PATIENCE_S = 20.0

_T = TypeVar("_T")
_STARTED = re.compile(r"\[(worker-\d+)\]\[INFO\] taskq\.worker: Started \(pid (\d+)\)")


def worker_environment(spool: Path, **extra: str) -> dict[str, str]:
    """Return the environment of a worker run: this directory importable, the spool set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_WORKER_")}
    path = [str(SUPPORT_DIR), *filter(None, [env.get("PYTHONPATH")])]
    env.update(PYTHONPATH=os.pathsep.join(path), TASKQ_TEST_SPOOL=str(spool), **extra)
    return env


def eventually(check: Callable[[], _T], timeout: float = PATIENCE_S, what: str = "") -> _T:
    """`eventually_blocking` with the patience of a run of worker processes."""
    return eventually_blocking(check, timeout, interval=0.05, what=what or None)


class SpoolClient:
    """The test's side of the queue: sends tasks by name and reads their results."""

    def __init__(self, spool: Path) -> None:
        self.broker = SpoolBroker(spool)

    def send(self, task_name: str, *args: Any) -> str:
        """Send task ``task_name`` with ``args``; return its task id."""
        kicker: AsyncKicker[..., Any] = AsyncKicker(task_name, self.broker, {})
        task = asyncio.run(kicker.kiq(*args))
        return task.task_id

    def result(self, task_id: str, timeout: float = PATIENCE_S) -> TaskiqResult[Any]:
        """Wait for the result of ``task_id`` and return it."""
        backend = self.broker.result_backend
        eventually(lambda: asyncio.run(backend.is_result_ready(task_id)), timeout, task_id)
        return asyncio.run(backend.get_result(task_id))


class WorkerRun:
    """A ``taskq worker`` process in a process group of its own, logging to a file."""

    def __init__(
        self, args: Sequence[str], spool: Path, cwd: Path | None = None, **env: str
    ) -> None:
        self.log_path = spool.parent / f"{spool.name}-worker.log"
        self._log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "taskq.cli", "worker", *args],
            cwd=cwd or spool.parent,
            env=worker_environment(spool, **env),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def __enter__(self) -> WorkerRun:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def log(self) -> str:
        """What the run logged so far."""
        return self.log_path.read_text(errors="replace")

    def started_workers(self) -> list[tuple[str, int]]:
        """Return (name, pid) of every worker process start logged so far."""
        return [(name, int(pid)) for name, pid in _STARTED.findall(self.log)]

    def wait_for_starts(self, count: int) -> list[tuple[str, int]]:
        """Wait until ``count`` worker starts were logged; return them all."""

        def enough() -> list[tuple[str, int]]:
            starts = self.started_workers()
            return starts if len(starts) >= count else []

        return self._eventually(enough, f"{count} worker starts in the log")

    def wait_for_log(self, text: str) -> None:
        """Wait until the log contains ``text``."""
        self._eventually(lambda: text in self.log, f"{text!r} in the log")

    def _eventually(self, check: Callable[[], _T], what: str) -> _T:
        try:
            return eventually(check, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the log so far:\n{self.log}") from None

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the ``taskq worker`` process only."""
        self.process.send_signal(signum)

    def send_signal_to_group(self, signum: int) -> None:
        """Send ``signum`` to every process of the run, as a terminal's Ctrl+C does."""
        os.killpg(self.process.pid, signum)

    def wait(self, timeout: float = PATIENCE_S) -> int:
        """Wait for the ``taskq worker`` process to exit; return its status."""
        return self.process.wait(timeout)

    def close(self) -> None:
        """Kill whatever is left of the run (the whole process group)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(PATIENCE_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log_file.close()


def pid_is_alive(pid: int) -> bool:
    """Tell whether process ``pid`` exists (and is not a zombie)."""
    if not Path("/proc").is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
