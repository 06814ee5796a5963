"""`InmemoryResultBackend`: results kept in this process, waiters woken the moment one is stored."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any, ClassVar, TypeVar

from taskq.abc.result_backend import AsyncResultBackend
from taskq.capabilities import Capability
from taskq.exceptions import ResultGetError
from taskq.progress import TaskProgress
from taskq.result import TaskiqResult

_ReturnType = TypeVar("_ReturnType")


class InmemoryResultBackend(AsyncResultBackend[_ReturnType]):
    """Keeps the latest ``max_stored_results`` results and progress reports (-1: no limit).

    The oldest result is forgotten when the limit is reached; a waiter is woken as soon as
    its result is stored (no polling).
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.PROGRESS, Capability.NOTIFY}
    )

    def __init__(self, max_stored_results: int = 100) -> None:
        """Keep at most ``max_stored_results`` results (-1 keeps every result)."""
        if max_stored_results == 0 or max_stored_results < -1:
            raise ValueError("max_stored_results must be positive, or -1 for no limit")
        self.max_stored_results = max_stored_results
        self.results: OrderedDict[str, TaskiqResult[_ReturnType]] = OrderedDict()
        self.progress: OrderedDict[str, TaskProgress[Any]] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    async def set_result(self, task_id: str, result: TaskiqResult[_ReturnType]) -> None:
        """Store ``result`` and wake whoever waits for it."""
        self._remember(self.results, task_id, result)
        for waiter in self._waiters.pop(task_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def is_result_ready(self, task_id: str) -> bool:
        """Tell whether a result is stored for ``task_id``."""
        return task_id in self.results

    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[_ReturnType]:
        """Return the stored result; `ResultGetError` when there is none (or it was evicted)."""
        try:
            return self.results[task_id]
        except KeyError:
            raise ResultGetError(f"no result is stored for task {task_id}") from None

    async def set_progress(self, task_id: str, progress: TaskProgress[Any]) -> None:
        """Store the latest progress report of ``task_id``."""
        self._remember(self.progress, task_id, progress)

    async def get_progress(self, task_id: str) -> TaskProgress[Any] | None:
        """Return the latest progress report of ``task_id``, or None."""
        return self.progress.get(task_id)

    async def wait_ready(self, task_id: str, timeout: float | None, check_interval: float) -> bool:
        """Wait until the result of ``task_id`` is stored, without polling."""
        if task_id in self.results:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(waiter)
        try:
            if timeout is None:
                await waiter
            else:
                await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            self._forget_waiter(task_id, waiter)
        return True

    def _remember(self, store: OrderedDict[str, Any], task_id: str, value: Any) -> None:
        if task_id in store:  # stored again: now the newest
            store.move_to_end(task_id)
        store[task_id] = value
        limit = self.max_stored_results
        if limit != -1:
            while len(store) > limit:
                store.popitem(last=False)

    def _forget_waiter(self, task_id: str, waiter: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(task_id)
        if waiters and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[task_id]
