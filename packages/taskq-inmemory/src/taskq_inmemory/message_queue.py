"""An in-process message queue that honours the `delay` and `priority` labels."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Iterable

from taskq.message import TaskiqMessage
from taskq.toolkit import running_loop

logger = logging.getLogger("taskq.inmemory")

#: A queued message: its bytes, or the message itself when it was kicked decoded.
Queued = bytes | TaskiqMessage


class MessageQueue:
    """Holds messages until a consumer takes them: higher priority first, then FIFO.

    A delayed message becomes available once its delay has passed, and then queues behind
    the messages of its priority that are already available. Any number of consumers may
    wait in `get`; each message goes to exactly one of them.
    """

    def __init__(self) -> None:
        """Create an open, empty queue."""
        # one FIFO lane per priority that has messages, and a heap of those priorities
        # (negated: the highest on top), so a message costs O(1) however long the queue
        self._lanes: dict[int, deque[Queued]] = {}
        self._priorities: list[int] = []
        self._available = 0
        self._delayed: list[tuple[float, int, int, Queued]] = []
        self._order = itertools.count()
        self._waiters: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop consumers last used
        self.closed = False

    def __len__(self) -> int:
        return self._available + len(self._delayed)

    @property
    def ready(self) -> int:
        """Messages a consumer can take now (delayed ones that fell due included)."""
        if self._delayed:
            self._promote_due()
        return self._available

    @property
    def delayed(self) -> int:
        """Messages waiting for their delay to pass."""
        if self._delayed:
            self._promote_due()
        return len(self._delayed)

    def put(self, data: Queued, priority: int = 0, delay: float = 0.0) -> None:
        """Add a message; ``delay`` in seconds, ``priority`` higher runs sooner."""
        if delay > 0:
            due = time.monotonic() + delay
            heapq.heappush(self._delayed, (due, next(self._order), priority, data))
            self._arm_timer()
        else:
            if self._delayed:  # what fell due before this message goes ahead of it
                self._promote_due()
            self._make_available(data, priority)
        if self._waiters:
            self._wake_one()

    def put_many(self, messages: Iterable[tuple[Queued, int, float]]) -> None:
        """Add ``(data, priority, delay)`` messages in order, as `put` adds each; wake once.

        Waiting consumers are woken once for the batch: one per message available now.
        """
        if self._delayed:  # what fell due before these messages goes ahead of them
            self._promote_due()
        now = time.monotonic()
        available = 0
        for data, priority, delay in messages:
            if delay > 0:
                heapq.heappush(self._delayed, (now + delay, next(self._order), priority, data))
            else:
                self._make_available(data, priority)
                available += 1
        self._arm_timer()  # for the delayed ones, if a consumer waits
        woken = 0
        for waiter in self._waiters:
            if woken == available:
                break
            if not waiter.done():
                waiter.set_result(None)
                woken += 1

    def get_nowait(self) -> Queued | None:
        """Take the next available message without waiting; None when none is available."""
        if self._delayed:
            self._promote_due()
        if not self._available:
            return None
        priority = -self._priorities[0]
        lane = self._lanes[priority]
        data = lane.popleft()
        if not lane:
            del self._lanes[priority]
            heapq.heappop(self._priorities)
        self._available -= 1
        return data

    def _make_available(self, data: Queued, priority: int) -> None:
        lane = self._lanes.get(priority)
        if lane is None:
            lane = self._lanes[priority] = deque()
            heapq.heappush(self._priorities, -priority)
        lane.append(data)
        self._available += 1

    async def get(self) -> Queued | None:
        """Take the next available message; None once the queue is closed and drained."""
        while True:
            data = self.get_nowait()
            if data is not None:
                return data
            if self.closed:
                return None
            self._loop = loop = running_loop(self._loop)
            waiter = loop.create_future()
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
            _, _, priority, data = heapq.heappop(self._delayed)
            self._make_available(data, priority)

    def _wake_one(self) -> None:
        # a woken waiter leaves the list, so messages put before its consumer resumes do
        # not look through it again (the consumer waits again if it finds nothing)
        waiters = self._waiters
        while waiters:
            waiter = waiters.pop(0)
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
