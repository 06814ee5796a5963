"""`CancelToken`: how a running task learns that its cancellation was asked for."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from taskq.exceptions import TaskCancelledError

_T = TypeVar("_T")


class CancelToken:
    """The cancellation state of one run: set by the worker, read by the task.

    An async task awaited through `run` is stopped when the token is cancelled: its asyncio
    task gets a ``CancelledError`` where it waits, which `run` turns into a
    `TaskCancelledError`. A sync task only sees `cancelled` turn true, from any thread, and
    decides itself when to stop (Python cannot stop a thread).
    """

    __slots__ = ("_cancelled_it", "_loop", "_running", "reason", "task_id")

    def __init__(self, task_id: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """A token for the run of ``task_id``, not cancelled yet.

        ``loop``, the loop the run will be awaited on, spares `run` looking it up (a system
        call before Python 3.12); None: the running loop.
        """
        self.task_id = task_id
        self.reason: str | None = None
        self._loop = loop
        self._running: asyncio.Task[Any] | None = None
        self._cancelled_it = False

    @property
    def cancelled(self) -> bool:
        """Whether the cancellation of this run was asked for."""
        return self.reason is not None

    def error(self) -> TaskCancelledError:
        """The error a cancelled run ends with."""
        return TaskCancelledError(task_id=self.task_id, reason=self.reason or "")

    def cancel(self, reason: str = "") -> None:
        """Ask the run to stop: an async run in `run` is cancelled now, a sync one sees it."""
        if self.reason is None:
            self.reason = reason
        if self._running is not None and not self._cancelled_it:
            self._cancelled_it = True
            _cancel(self._running)

    async def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Await ``coro`` in the running asyncio task, which `cancel` cancels meanwhile.

        Only the awaiting of ``coro`` is cancelled: the task goes on after it. A cancellation
        the task was asked for by someone else too (a stopping worker) goes on up.

        Raises:
            TaskCancelledError: the token was cancelled, before or during the run.
        """
        if self.reason is not None:
            coro.close()
            raise self.error()
        task = asyncio.current_task(self._loop)
        self._running = task
        try:
            return await coro
        except asyncio.CancelledError:
            if not self._cancelled_it or task is None:
                raise
            self._cancelled_it = False
            if _uncancel(task) > 0:  # asked for by someone else as well
                raise
            raise self.error() from None
        finally:
            self._running = None
            if self._cancelled_it and task is not None:  # the coroutine swallowed it
                self._cancelled_it = False
                _uncancel(task)


if sys.version_info >= (3, 11):

    def _cancel(task: asyncio.Task[Any]) -> None:
        task.cancel()

    def _uncancel(task: asyncio.Task[Any]) -> int:
        """Take back one cancellation request; return how many others remain."""
        return task.uncancel()

else:  # pragma: no cover - Python 3.10, run by its own tox environment

    def _cancel(task: asyncio.Task[Any]) -> None:
        # past the receiver's MessageTask.cancel, which would note a worker's cancellation
        asyncio.Task.cancel(task)

    def _uncancel(task: asyncio.Task[Any]) -> int:
        """How many cancellations others asked for: 1 if the worker did, else 0."""
        return int(getattr(task, "cancel_was_requested", False))
