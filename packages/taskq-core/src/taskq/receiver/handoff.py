"""`ThreadHandoff`: sync calls run in an executor, outcomes handed back to the loop in batches."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any


class ThreadHandoff:
    """Runs sync calls in an executor and wakes the event loop once per batch of outcomes.

    ``loop.run_in_executor`` wakes the loop once per call (a write to its self-pipe, then a
    trip through the selector). Here a finished call queues its outcome and only the first
    one queued since the loop last collected them wakes it: while the loop is busy, calls
    that end meanwhile are collected together. A call whose future was cancelled before a
    thread took it (a timeout) does not run, as with ``run_in_executor``.
    """

    __slots__ = ("_done", "_wake_pending", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand outcomes back to ``loop``."""
        self.loop = loop
        self._done: deque[tuple[asyncio.Future[Any], bool, Any]] = deque()
        self._wake_pending = False

    def run(self, executor: Executor, call: Callable[[], Any]) -> asyncio.Future[Any]:
        """Submit ``call`` to ``executor``; the future (of ``loop``) gets its outcome."""
        future = self.loop.create_future()
        executor.submit(self._call, future, call)
        return future

    def _call(self, future: asyncio.Future[Any], call: Callable[[], Any]) -> None:
        # in a thread of the executor
        if future.cancelled():
            return
        try:
            outcome = (future, True, call())
        except BaseException as exc:  # the awaiting task decides what becomes of it
            outcome = (future, False, exc)
        self._done.append(outcome)
        # queued before the flag is read: a loop that cleared the flag collects it anyway
        if not self._wake_pending:
            self._wake_pending = True
            self.loop.call_soon_threadsafe(self._collect)

    def _collect(self) -> None:
        # on the loop: cleared before collecting, so a call ending now wakes the loop again
        self._wake_pending = False
        done = self._done
        while done:
            future, ok, value = done.popleft()
            if future.cancelled():
                continue
            if ok:
                future.set_result(value)
            elif isinstance(value, StopIteration):  # a future refuses to carry one
                future.set_exception(RuntimeError(f"the function raised {value!r}"))
            else:
                future.set_exception(value)
