"""`CancelToken`: how a running task learns that its cancellation was asked for."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from taskq.exceptions import TaskCancelledError


class CancelToken:
    """The cancellation state of one run: set by the worker, read by the task.

    An async task run through `run` is stopped (its asyncio task cancelled) when the token is
    cancelled; a sync task only sees `cancelled` turn true, from any thread, and decides itself
    when to stop (Python cannot stop a thread).
    """

    __slots__ = ("_running", "reason", "task_id")

    def __init__(self, task_id: str) -> None:
        """A token for the run of ``task_id``, not cancelled yet."""
        self.task_id = task_id
        self.reason: str | None = None
        self._running: asyncio.Task[Any] | None = None

    @property
    def cancelled(self) -> bool:
        """Whether the cancellation of this run was asked for."""
        return self.reason is not None

    def error(self) -> TaskCancelledError:
        """The error a cancelled run ends with."""
        return TaskCancelledError(task_id=self.task_id, reason=self.reason or "")

    def cancel(self, reason: str = "") -> None:
        """Ask the run to stop: an async run is cancelled now, a sync one sees `cancelled`."""
        if self.reason is None:
            self.reason = reason
        if self._running is not None:
            self._running.cancel()

    def run(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in an asyncio task that `cancel` stops.

        Raises:
            TaskCancelledError: the token was cancelled already (``coro`` is closed unrun).
        """
        if self.reason is not None:
            coro.close()
            raise self.error()
        self._running = asyncio.ensure_future(coro)
        return self._running
