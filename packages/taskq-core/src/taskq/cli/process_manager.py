"""The process manager of ``taskq worker``: keeps N worker processes running until told to stop.

- A worker process that dies unexpectedly is logged once and restarted after a delay that
  doubles with each quick failure (0.5 s, 1 s, 2 s, ... up to 10 s).
- One that exits after ``--max-tasks-per-child`` tasks is replaced at once.
- With ``--reload``, a change to a ``.py`` file stops every worker gracefully and starts new ones.
- The first SIGTERM or SIGINT is forwarded (as SIGTERM) to the workers, which get the shutdown
  timeout plus `STOP_MARGIN_S` to finish; a worker still there then is killed. The status is
  0 when every worker stopped by itself, 1 otherwise.
- A second SIGTERM or SIGINT kills the workers and exits at once with status 128 + signal.
- A worker whose broker refused its settings (exit status `EXIT_REFUSED`) is not restarted:
  the manager stops the other workers and exits with that status.
- Every worker finds the manager's pid in the `WORKER_GROUP_ENV` environment variable: what
  the processes of one ``taskq worker`` share (Prometheus metric files, for instance) is
  keyed by it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from taskq.cli.environment import WORKER_GROUP_ENV
from taskq.cli.options import WorkerOptions
from taskq.cli.reload import ChangeWatcher
from taskq.cli.worker_process import EXIT_REFUSED, run_worker

logger = logging.getLogger("taskq.cli")

#: Seconds a stopping worker gets beyond the shutdown timeout (for its broker's shutdown).
STOP_MARGIN_S = 5.0
FIRST_RESTART_DELAY_S = 0.5
MAX_RESTART_DELAY_S = 10.0
#: A worker that ran this long before dying is restarted after the first delay again.
HEALTHY_AFTER_S = 30.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Slot:
    """One of the N places for a worker process: the process in it now and its restarts."""

    def __init__(self, index: int) -> None:
        self.name = f"worker-{index}"
        self.process: BaseProcess | None = None
        self.started_at = 0.0
        self.quick_failures = 0
        self.restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid


class ProcessManager:
    """Runs ``options.workers`` processes of ``target`` (default: `run_worker`).

    ``watcher`` (for ``--reload``) says when the code changed. Call `run` from the main
    thread: it handles SIGTERM and SIGINT until it returns the exit status.
    """

    def __init__(
        self,
        options: WorkerOptions,
        target: Callable[[WorkerOptions], None] = run_worker,
        watcher: ChangeWatcher | None = None,
    ) -> None:
        self.options = options
        self.target = target
        self.watcher = watcher
        self.slots = [_Slot(index) for index in range(options.workers)]
        self._context = multiprocessing.get_context("spawn")
        self._stop_signal: int | None = None
        self._refused = False  # a worker's broker refused its settings: stop, do not restart
        self._wakeup_read = self._wakeup_write = -1

    def run(self) -> int:
        """Run the workers until a signal stops them; return the exit status."""
        restore = self._handle_signals()
        os.environ[WORKER_GROUP_ENV] = str(os.getpid())  # inherited by every worker
        try:
            for slot in self.slots:
                self._start(slot)
            while self._stop_signal is None and not self._refused:
                self._wait_for_something()
                self._reap()
                self._start_due()
                self._reload_if_changed()
            in_time = self._stop_workers()
            logger.info("Stopped" if in_time else "Stopped, after killing late workers")
            if self._refused:
                return EXIT_REFUSED
            return 0 if in_time else 1
        finally:
            restore()

    # -- signals ---------------------------------------------------------------------------

    def _handle_signals(self) -> Callable[[], None]:
        self._wakeup_read, self._wakeup_write = os.pipe()
        os.set_blocking(self._wakeup_read, False)
        os.set_blocking(self._wakeup_write, False)
        previous_fd = signal.set_wakeup_fd(self._wakeup_write, warn_on_full_buffer=False)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in _STOP_SIGNALS}

        def restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(previous_fd)
            os.close(self._wakeup_read)
            os.close(self._wakeup_write)

        return restore

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._stop_signal is None:
            self._stop_signal = signum
            logger.info(
                "%s: stopping the workers (running tasks get %g s; send it again to kill them)",
                name,
                self.options.shutdown_timeout,
            )
            return
        logger.warning("%s again: killing the workers", name)
        self._kill_all()
        os._exit(128 + signum)

    # -- the loop --------------------------------------------------------------------------

    def _wait_for_something(self) -> None:
        """Sleep until a worker exits, a signal comes, a restart is due or the watcher looks."""
        sentinels: list[Any] = [s.process.sentinel for s in self.slots if s.process is not None]
        wait([*sentinels, self._wakeup_read], timeout=self._next_timeout())
        try:
            while os.read(self._wakeup_read, 512):
                pass
        except BlockingIOError:
            pass

    def _next_timeout(self) -> float | None:
        now = time.monotonic()
        delays = [max(0.0, s.restart_at - now) for s in self.slots if s.restart_at is not None]
        if self.watcher is not None:
            delays.append(self.watcher.seconds_to_next_look())
        return min(delays, default=None)

    def _reap(self) -> None:
        for slot in self.slots:
            process = slot.process
            if process is None or process.exitcode is None:
                continue
            slot.process = None
            if self._stop_signal is None:
                self._schedule_restart(slot, process.pid, process.exitcode)
            process.close()

    def _schedule_restart(self, slot: _Slot, pid: int | None, status: int) -> None:
        now = time.monotonic()
        if status == EXIT_REFUSED:
            logger.error(
                "%s (pid %s): its broker refused its settings (the error above); restarting "
                "cannot help: stopping",
                slot.name,
                pid,
            )
            self._refused = True
            return
        if status == 0 and self.options.max_tasks_per_child is not None:
            logger.info("%s (pid %s) reached --max-tasks-per-child; replacing it", slot.name, pid)
            slot.quick_failures = 0
            slot.restart_at = now
            return
        healthy = now - slot.started_at >= HEALTHY_AFTER_S
        slot.quick_failures = 1 if healthy else slot.quick_failures + 1
        delay = min(MAX_RESTART_DELAY_S, FIRST_RESTART_DELAY_S * 2 ** (slot.quick_failures - 1))
        logger.warning(
            "%s (pid %s) %s; restarting it in %g s", slot.name, pid, _describe_exit(status), delay
        )
        slot.restart_at = now + delay

    def _start_due(self) -> None:
        if self._refused:  # stopping: start nothing more
            return
        now = time.monotonic()
        for slot in self.slots:
            if slot.restart_at is not None and slot.restart_at <= now:
                self._start(slot)

    def _reload_if_changed(self) -> None:
        changed = None if self.watcher is None else self.watcher.changed()
        if changed is None or self._stop_signal is not None:
            return
        logger.info("%s changed: restarting the workers", changed)
        self._stop_workers()
        if self._stop_signal is None:
            for slot in self.slots:
                slot.quick_failures = 0
                self._start(slot)

    # -- starting and stopping processes ---------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        process = self._context.Process(target=self.target, args=(self.options,), name=slot.name)
        process.start()
        slot.process = process
        slot.started_at = time.monotonic()
        slot.restart_at = None
        logger.debug("Started %s (pid %s)", slot.name, process.pid)

    def _stop_workers(self) -> bool:
        """Stop every worker gracefully; True when all stopped within the time they get."""
        running = [slot for slot in self.slots if slot.process is not None]
        for slot in running:
            slot.restart_at = None
            if slot.process is not None and slot.process.exitcode is None:
                slot.process.terminate()
        deadline = time.monotonic() + self.options.shutdown_timeout + STOP_MARGIN_S
        while left := [s.process for s in running if s.process and s.process.exitcode is None]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait([process.sentinel for process in left], timeout=remaining)
        for slot in self.slots:
            slot.restart_at = None
        stragglers = [slot for slot in running if slot.process and slot.process.exitcode is None]
        for slot in stragglers:
            logger.warning("%s (pid %s) did not stop in time; killing it", slot.name, slot.pid)
        self._kill_all()
        return not stragglers

    def _kill_all(self) -> None:
        """Kill the processes still running and reap every process; empty every slot."""
        for slot in self.slots:
            if slot.process is not None and slot.process.exitcode is None:
                slot.process.kill()
        for slot in self.slots:
            process, slot.process = slot.process, None
            if process is not None:
                process.join(timeout=1.0)


def _describe_exit(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"
