"""Clocks of the scheduler: the system's, and a manual one that tests move forward by hand."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Protocol

#: Real seconds `ManualClock.advance` waits for woken schedulers to go back to sleep.
SETTLE_TIMEOUT_S = 30.0


class Clock(Protocol):
    """What the scheduler asks of time: the current instant and a way to wait."""

    def now(self) -> float:
        """Return the current time in POSIX seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` have passed on this clock."""
        ...


class SystemClock:
    """The wall clock (`time.time`), waited on with `asyncio.sleep`."""

    def now(self) -> float:
        """Return `time.time()`."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of real time."""
        await asyncio.sleep(max(seconds, 0.0))


class ManualClock:
    """A clock that only moves when told to: ``await clock.advance(60)`` is a minute.

    `advance` moves time forward in steps, stopping at each instant a sleeper asked to be
    woken at, and waits for the woken schedulers to go back to sleep before the next step;
    so every fire due in the interval is sent, in order, as on a real clock.

    Args:
        start: The initial time, an aware datetime or POSIX seconds.
    """

    def __init__(self, start: datetime | float) -> None:
        self._now = start.timestamp() if isinstance(start, datetime) else float(start)
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._changed: asyncio.Condition | None = None

    def now(self) -> float:
        """Return the clock's current time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by ``seconds``."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (self._now + seconds, waiter)
        self._sleepers.append(entry)
        await self._notify()
        try:
            await waiter
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)
                await self._notify()

    @property
    def sleepers(self) -> int:
        """How many coroutines are waiting on this clock."""
        return len(self._sleepers)

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Return once at least ``count`` coroutines sleep on this clock (e.g. a started loop)."""
        condition = self._condition()
        async with condition:
            await asyncio.wait_for(
                condition.wait_for(lambda: len(self._sleepers) >= count), SETTLE_TIMEOUT_S
            )

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward, waking each sleeper at its instant in turn."""
        target = self._now + seconds
        while True:
            due = [deadline for deadline, _ in self._sleepers if deadline <= target]
            if not due:
                break
            self._now = max(self._now, min(due))
            await self._wake_due()
        self._now = target

    def jump(self, seconds: float) -> None:
        """Move the clock forward at once, waking no one: what a suspended machine sees."""
        self._now += seconds

    async def _wake_due(self) -> None:
        asleep = len(self._sleepers)
        woken = [entry for entry in self._sleepers if entry[0] <= self._now]
        for entry in woken:
            self._sleepers.remove(entry)
            if not entry[1].done():
                entry[1].set_result(None)
        # each woken sleeper runs until it sleeps again
        await self.wait_for_sleepers(asleep)

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _notify(self) -> None:
        condition = self._condition()
        async with condition:
            condition.notify_all()
