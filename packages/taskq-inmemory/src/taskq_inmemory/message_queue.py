"""An in-process message queue that honours the `delay` and `priority` labels."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time

logger = logging.getLogger("taskq.inmemory")


class MessageQueue:
    """Holds message bytes until a consumer takes them: higher priority first, then FIFO.

    A delayed message becomes available once its delay has passed. Any number of consumers
    may wait in `get`; each message goes to exactly one of them.
    """

    def __init__(self) -> None:
        """Create an open, empty queue."""
        self._ready: list[tuple[int, int, bytes]] = []
        self._delayed: list[tuple[float, int, int, bytes]] = []
        self._order = itertools.count()
        self._waiters: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False

    def __len__(self) -> int:
        return len(self._ready) + len(self._delayed)

    def put(self, data: bytes, priority: int = 0, delay: float = 0.0) -> None:
        """Add a message; ``delay`` in seconds, ``priority`` higher runs sooner."""
        order = next(self._order)
        if delay > 0:
            heapq.heappush(self._delayed, (time.monotonic() + delay, order, priority, data))
            self._arm_timer()
        else:
            heapq.heappush(self._ready, (-priority, order, data))
        if self._waiters:
            self._wake_one()

    def get_nowait(self) -> bytes | None:
        """Take the next available message without waiting; None when none is available."""
        if self._delayed:
            self._promote_due()
        if self._ready:
            return heapq.heappop(self._ready)[2]
        return None

    async def get(self) -> bytes | None:
        """Take the next available message; None once the queue is closed and drained."""
        while True:
            data = self.get_nowait()
            if data is not None:
                return data
            if self.closed:
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            self._arm_timer()
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def seconds_until_due(self) -> float | None:
        """Seconds until the next delayed message is due (None when none is delayed)."""
        if not self._delayed:
            return None
        return max(0.0, self._delayed[0][0] - time.monotonic())

    def open(self) -> None:
        """Accept consumers again after `close`."""
        self.closed = False

    def close(self) -> int:
        """Stop: waiting consumers drain what is ready, then get None.

        Delayed messages that are not due yet are dropped; their count is returned.
        """
        self.closed = True
        dropped = len(self._delayed)
        self._delayed.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        return dropped

    def _promote_due(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, order, priority, data = heapq.heappop(self._delayed)
            heapq.heappush(self._ready, (-priority, order, data))

    def _wake_one(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                return

    def _arm_timer(self) -> None:
        if not self._delayed or not self._waiters:
            return
        due = self._delayed[0][0]
        if self._timer is not None and self._timer.when() <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + max(0.0, due - time.monotonic()), self._on_due)

    def _on_due(self) -> None:
        self._timer = None
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
