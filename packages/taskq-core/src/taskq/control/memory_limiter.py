"""`MemoryLimiter`: rate and concurrency limits for the workers of one process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import TYPE_CHECKING

from taskq.abc.limiter import TaskLimiter
from taskq.control.limits import CONCURRENCY_RETRY_S

if TYPE_CHECKING:
    from taskq.control.limits import RateLimit


class MemoryLimiter(TaskLimiter):
    """Keeps, per key, the start times of the last window and the tokens running now.

    The default limiter of a broker whose workers share one process (the in-memory broker);
    a waiter for a concurrency place wakes as soon as one is released.
    """

    def __init__(self) -> None:
        """Start with no run counted."""
        self._starts: dict[str, deque[float]] = {}
        self._running: dict[str, set[str]] = {}
        self._released: dict[str, asyncio.Event] = {}

    async def acquire(
        self, key: str, token: str, rate: RateLimit | None, max_concurrency: int | None
    ) -> float:
        """Start a run under ``key`` if its limits allow it now (see `TaskLimiter.acquire`)."""
        now = time.monotonic()
        running = self._running.setdefault(key, set())
        if max_concurrency is not None and len(running) >= max_concurrency:
            return CONCURRENCY_RETRY_S
        if rate is not None:
            starts = self._starts.setdefault(key, deque())
            while starts and starts[0] <= now - rate.period_s:
                starts.popleft()
            if len(starts) >= rate.count:
                return starts[0] + rate.period_s - now
            starts.append(now)
        if max_concurrency is not None:
            running.add(token)
        return 0.0

    async def release(self, key: str, token: str) -> None:
        """Give back ``token``'s concurrency place and wake the waiters of ``key``."""
        running = self._running.get(key)
        if running is None or token not in running:
            return
        running.discard(token)
        released = self._released.pop(key, None)
        if released is not None:
            released.set()

    async def wait(self, key: str, seconds: float) -> None:
        """Wait ``seconds``, or less when a place under ``key`` is released."""
        released = self._released.get(key)
        if released is None:
            released = self._released[key] = asyncio.Event()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(released.wait(), seconds)
