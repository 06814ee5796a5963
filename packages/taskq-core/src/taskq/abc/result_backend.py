"""The result backend contract: where workers store results and clients read them."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from taskq.capabilities import Capability
from taskq.exceptions import ResultBackendError

if TYPE_CHECKING:
    from taskq.progress import TaskProgress
    from taskq.result import TaskiqResult

_ReturnType = TypeVar("_ReturnType")

#: Seconds a result backend that declares ``Capability.TTL`` keeps a result by default: one day.
DEFAULT_RESULT_TTL_S = 86_400.0


class AsyncResultBackend(ABC, Generic[_ReturnType]):
    """Stores task results (and, where declared, progress) by task id.

    Subclasses implement `set_result`, `is_result_ready` and `get_result`; `get_result` raises
    `taskq.exceptions.ResultGetError` for an id with no result. A backend that can wake a
    waiter without polling declares ``Capability.NOTIFY`` and overrides `wait_ready`; one
    holding its results in the reading process may override `result_now`.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    async def startup(self) -> None:
        """Open connections; called by the broker's startup."""

    async def shutdown(self) -> None:
        """Close connections; called by the broker's shutdown."""

    @abstractmethod
    async def set_result(self, task_id: str, result: TaskiqResult[_ReturnType]) -> None:
        """Store the result of task ``task_id``."""

    @abstractmethod
    async def is_result_ready(self, task_id: str) -> bool:
        """Tell whether a result is stored for ``task_id``."""

    @abstractmethod
    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[_ReturnType]:
        """Return the stored result of ``task_id`` (raise `ResultGetError` when there is none)."""

    def result_now(self, task_id: str) -> TaskiqResult[_ReturnType] | None:
        """The stored result of ``task_id`` if this backend holds it in this process; else None.

        Read without I/O and without a coroutine: `AsyncTaskiqTask.wait_result` asks it
        first, and awaits `wait_ready` and `get_result` only when it gives None. A backend
        keeping its results in memory overrides it; this default holds none.
        """
        return None

    async def set_progress(self, task_id: str, progress: TaskProgress[Any]) -> None:
        """Store a progress report (backends that declare ``Capability.PROGRESS``)."""
        raise ResultBackendError(f"{type(self).__name__} does not store task progress")

    async def get_progress(self, task_id: str) -> TaskProgress[Any] | None:
        """Return the latest progress report of ``task_id``, or None when there is none."""
        raise ResultBackendError(f"{type(self).__name__} does not store task progress")

    async def wait_ready(self, task_id: str, timeout: float | None, check_interval: float) -> bool:
        """Wait until a result for ``task_id`` is stored; False when ``timeout`` s passed first.

        This default polls `is_result_ready` every ``check_interval`` seconds; backends with
        ``Capability.NOTIFY`` replace it with a wake-up.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not await self.is_result_ready(task_id):
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                await asyncio.sleep(min(check_interval, remaining))
            else:
                await asyncio.sleep(check_interval)
        return True
