"""`InmemoryResultBackend`: results kept in this process, waiters woken the moment one is stored."""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from taskq.abc.result_backend import DEFAULT_RESULT_TTL_S, AsyncResultBackend
from taskq.capabilities import Capability
from taskq.exceptions import ResultGetError
from taskq.result import TaskiqResult
from taskq.toolkit import check_count, check_seconds, running_loop

if TYPE_CHECKING:
    from taskq.progress import TaskProgress

_ReturnType = TypeVar("_ReturnType")
_Value = TypeVar("_Value")


class InmemoryResultBackend(AsyncResultBackend[_ReturnType]):
    """Keeps the latest ``max_stored_results`` results and progress reports (-1: no limit).

    The oldest result is forgotten when the limit is reached, and any result ``result_ttl``
    seconds after it was stored (default one day; None: only the limit applies); a waiter is
    woken as soon as its result is stored (no polling).
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.PROGRESS, Capability.NOTIFY, Capability.TTL}
    )

    def __init__(
        self, max_stored_results: int = 100, result_ttl: float | None = DEFAULT_RESULT_TTL_S
    ) -> None:
        """Keep at most ``max_stored_results`` results (-1: no limit), each ``result_ttl`` s."""
        if max_stored_results != -1:
            check_count("max_stored_results", max_stored_results, alternative="or -1 (no limit)")
        if result_ttl is not None:
            check_seconds("result_ttl", result_ttl, alternative="or None (no expiry)")
        self.max_stored_results = max_stored_results
        self.result_ttl = result_ttl
        self.results: OrderedDict[str, TaskiqResult[_ReturnType]] = OrderedDict()
        self.progress: OrderedDict[str, TaskProgress[Any]] = OrderedDict()
        # per store, the time.monotonic() past which each value is gone (absent: kept)
        self._result_deadlines: dict[str, float] = {}
        self._progress_deadlines: dict[str, float] = {}
        self._expires_at: dict[int, dict[str, float]] = {
            id(self.results): self._result_deadlines,
            id(self.progress): self._progress_deadlines,
        }
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop waiters last used

    async def set_result(self, task_id: str, result: TaskiqResult[_ReturnType]) -> None:
        """Store ``result`` and wake whoever waits for it."""
        self._remember(self.results, self._result_deadlines, task_id, result)
        if self._waiters:
            for waiter in self._waiters.pop(task_id, ()):
                if not waiter.done():
                    waiter.set_result(None)

    async def is_result_ready(self, task_id: str) -> bool:
        """Tell whether an unexpired result is stored for ``task_id``."""
        return self._fresh(self.results, self._result_deadlines, task_id) is not None

    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[_ReturnType]:
        """Return the stored result; `ResultGetError` when there is none (evicted, expired)."""
        result = self._fresh(self.results, self._result_deadlines, task_id)
        if result is None:
            raise ResultGetError(f"no result is stored for task {task_id} (or it expired)")
        return result

    def result_now(self, task_id: str) -> TaskiqResult[_ReturnType] | None:
        """The unexpired result stored for ``task_id``, or None.

        None too where `get_result` is not this module's (a subclass's, or a stand-in on the
        class or the instance): every read then goes through it. Told from the bound method,
        as `InMemoryBroker` tells its own `kick`.
        """
        read: Any = self.get_result  # whatever it is now, a bound method or a stand-in
        try:
            own = read.__func__ is _OWN_GET_RESULT and read.__self__ is self
        except AttributeError:  # a plain function set on the instance
            own = False
        return self._fresh(self.results, self._result_deadlines, task_id) if own else None

    async def set_progress(self, task_id: str, progress: TaskProgress[Any]) -> None:
        """Store the latest progress report of ``task_id``."""
        self._remember(self.progress, self._progress_deadlines, task_id, progress)

    async def get_progress(self, task_id: str) -> TaskProgress[Any] | None:
        """Return the latest unexpired progress report of ``task_id``, or None."""
        return self._fresh(self.progress, self._progress_deadlines, task_id)

    async def wait_ready(self, task_id: str, timeout: float | None, check_interval: float) -> bool:
        """Wait until the result of ``task_id`` is stored, without polling."""
        results, deadlines = self.results, self._result_deadlines
        if self._fresh(results, deadlines, task_id) is not None:
            return True
        if timeout is None or timeout > 0:
            # a task just handed to a worker of this process is usually queued to run before
            # this one resumes: let it run first, so that a result it stores at once costs no
            # waiter and no further trip through the event loop
            await asyncio.sleep(0)
            if self._fresh(results, deadlines, task_id) is not None:
                return True
        self._loop = loop = running_loop(self._loop)
        waiter = loop.create_future()
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

    def _remember(
        self,
        store: OrderedDict[str, _Value],
        deadlines: dict[str, float],
        task_id: str,
        value: _Value,
    ) -> None:
        if task_id in store:  # stored again: now the newest
            store.move_to_end(task_id)
        store[task_id] = value
        now = time.monotonic()
        ttl = self.result_ttl
        if ttl is None:
            deadlines.pop(task_id, None)
        else:
            deadlines[task_id] = now + ttl
        limit = self.max_stored_results
        while store:  # the oldest go first: past the limit, or expired
            oldest = next(iter(store))
            if (limit == -1 or len(store) <= limit) and deadlines.get(oldest, math.inf) > now:
                break
            del store[oldest]
            deadlines.pop(oldest, None)

    def _fresh(
        self, store: OrderedDict[str, _Value], deadlines: dict[str, float], task_id: str
    ) -> _Value | None:
        """The value stored for ``task_id`` unless it expired (then it is dropped); or None."""
        value = store.get(task_id)
        if value is None:
            return None
        expires_at = deadlines.get(task_id)
        if expires_at is not None and expires_at <= time.monotonic():
            del store[task_id]
            del deadlines[task_id]
            return None
        return value

    def _forget_waiter(self, task_id: str, waiter: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(task_id)
        if waiters and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[task_id]


#: The backend's own `get_result`, told apart from a subclass's or a stand-in's.
_OWN_GET_RESULT = InmemoryResultBackend.get_result
