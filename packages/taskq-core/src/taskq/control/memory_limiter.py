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

    A refused run is told to wait until a start frees, plus ``(n - 1) // count - 1`` whole
    periods for the n-th run refused in a period (none for the first ``2 * count``; a run
    refused again keeps its place): the next window meets twice the runs it can start, and
    the runs further behind come back a window's worth at a time.

    The default limiter of a broker whose workers share one process (the in-memory broker);
    a waiter for a concurrency place wakes as soon as one is released.
    """

    def __init__(self) -> None:
        """Start with no run counted."""
        self._starts: dict[str, tuple[deque[float], float]] = {}  # starts, period
        # per key, the runs holding a place under each token (a retry may take its task id's
        # place while the failed run still ends: the place is freed when both gave it back)
        self._running: dict[str, dict[str, int]] = {}
        self._released: dict[str, asyncio.Event] = {}
        self._refused: dict[str, tuple[dict[str, int], float]] = {}  # places, until when

    async def acquire(
        self, key: str, token: str, rate: RateLimit | None, max_concurrency: int | None
    ) -> float:
        """Start a run under ``key`` if its limits allow it now (see `TaskLimiter.acquire`)."""
        now = time.monotonic()
        running = self._running.get(key)
        if max_concurrency is not None and running and sum(running.values()) >= max_concurrency:
            return CONCURRENCY_RETRY_S
        if rate is not None:
            wait_s = self._start(key, token, rate, now)
            if wait_s > 0:
                return wait_s
        if max_concurrency is not None:
            holders = self._running.setdefault(key, {})
            holders[token] = holders.get(token, 0) + 1
        return 0.0

    async def release(self, key: str, token: str) -> None:
        """Give back ``token``'s concurrency place and wake the waiters of ``key``."""
        running = self._running.get(key)
        if running is None or token not in running:
            return
        running[token] -= 1
        if running[token] == 0:
            del running[token]
        if not running:
            del self._running[key]
        released = self._released.pop(key, None)
        if released is not None:
            released.set()

    def _start(self, key: str, token: str, rate: RateLimit, now: float) -> float:
        """Count a start under ``key`` and return 0.0, or return the seconds to wait."""
        entry = self._starts.get(key)
        if entry is None:
            self._forget_idle(now)
            entry = self._starts[key] = (deque(), rate.period_s)
        starts = entry[0]
        while starts and starts[0] <= now - rate.period_s:
            starts.popleft()
        if len(starts) >= rate.count:
            return starts[0] + rate.period_s - now + self._behind(key, token, rate, now)
        starts.append(now)
        return 0.0

    def _behind(self, key: str, token: str, rate: RateLimit, now: float) -> float:
        """The extra wait of a refused run: ``(n - 1) // count - 1`` periods for the n-th."""
        places, until = self._refused.get(key, ({}, 0.0))
        if until <= now:
            places, until = {}, now + rate.period_s
            self._refused[key] = (places, until)
        place = places.setdefault(token, len(places) + 1)
        return max(0, (place - 1) // rate.count - 1) * rate.period_s

    def _forget_idle(self, now: float) -> None:
        # amortised: a sweep each time the keys double keeps them bounded by the live ones
        count = len(self._starts)
        if count < 2 or count & (count - 1):
            return
        for key, (starts, period_s) in list(self._starts.items()):
            if not starts or starts[-1] <= now - period_s:
                del self._starts[key]
                self._refused.pop(key, None)

    async def wait(self, key: str, seconds: float) -> None:
        """Wait ``seconds``, or less when a place under ``key`` is released."""
        released = self._released.get(key)
        if released is None:
            released = self._released[key] = asyncio.Event()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(released.wait(), seconds)
