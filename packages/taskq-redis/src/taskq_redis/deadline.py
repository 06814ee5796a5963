"""`CallDeadline`: bounds calls made one after another in time, with one timer for them all.

``asyncio.timeout`` schedules an event-loop timer for each call and cancels it when the call
returns: for calls of a few dozen microseconds (a client's sends, one after another) that is
an eighth of their CPU. A `CallDeadline` keeps its timer: a call only notes its deadline (and
sets the timer earlier if its deadline comes first), and the timer, when it goes off before
the deadline of the call then in flight, is set again for that deadline. A call still in
flight at its deadline is cancelled, as ``asyncio.timeout`` does it. Python 3.11 or later
(it needs ``Task.uncancel``).
"""

from __future__ import annotations

import asyncio
import sys


class CallDeadline:
    """Cancels the call in flight when its deadline passes; one call at a time.

    `start` before the call, `finish` after it, whatever its outcome; `finish` tells whether
    the deadline cut the call off (then the cancellation it caused is withdrawn, and the
    caller raises its timeout error in place of the ``CancelledError``).
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._task: asyncio.Task[object] | None = None
        self._deadline = 0.0
        self._cancelling = 0
        self._cut_off = False

    def start(self, seconds: float) -> bool:
        """Note that the current task's call must end within ``seconds``.

        Returns False, noting nothing, while another call is in flight (calls that overlap
        need a timer each).
        """
        if self._task is not None:
            return False
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline bounds a call made by a task")
        self._task, self._cut_off = task, False
        if sys.version_info >= (3, 11):
            self._cancelling = task.cancelling()
        self._deadline = deadline = loop.time() + seconds
        if self._timer is None or deadline < self._timer_at or loop is not self._loop:
            self._set_timer(loop, deadline)
        return True

    def finish(self) -> bool:
        """End the call; return whether its deadline cancelled it (idempotent)."""
        task, self._task = self._task, None
        if not self._cut_off or task is None:
            return False
        self._cut_off = False
        if sys.version_info >= (3, 11):
            # the cancellation was the deadline's alone: no one else cancelled the task meanwhile
            return task.uncancel() <= self._cancelling
        return True  # pragma: no cover - Python 3.10 cannot tell (its callers use wait_for)

    def close(self) -> None:
        """Cancel the timer (a later `start` sets it again)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _set_timer(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self.close()
        self._loop, self._timer_at = loop, when
        self._timer = loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        task, loop = self._task, self._loop
        if task is None or loop is None:  # idle: the next call sets the timer again
            return
        if loop.time() < self._deadline:  # set for an earlier call's deadline
            self._set_timer(loop, self._deadline)
            return
        self._cut_off = True
        task.cancel()
