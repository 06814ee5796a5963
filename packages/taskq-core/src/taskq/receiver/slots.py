"""`Slots`: how many more messages the consume loop may take, freed as messages finish."""

from __future__ import annotations

import asyncio


class Slots:
    """A counting semaphore for one consumer, cheaper than `asyncio.Semaphore`.

    Only the consume loop takes slots (``free -= 1`` once it saw one free) and waits for
    them; any number of message tasks give them back. A loop that finds a slot free does
    not await.
    """

    __slots__ = ("_waiter", "free")

    def __init__(self, count: int) -> None:
        """Start with ``count`` free slots."""
        self.free = count
        self._waiter: asyncio.Future[None] | None = None

    def give_back(self) -> None:
        """Free one slot and wake the consumer if it waits for one."""
        self.free += 1
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_free(self) -> None:
        """Return once at least one slot is free."""
        while self.free <= 0:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
