"""`InMemoryCancellationStore`: cancellations recorded in this process, listeners told at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

from taskq.abc.cancellation import DEFAULT_CANCELLATION_TTL_S, Cancellation, CancellationStore


class InMemoryCancellationStore(CancellationStore):
    """Keeps cancellations in a dict of this process: for a broker whose workers run here.

    Expired records are dropped as new ones are written, so the dict holds at most the
    cancellations of the last ``ttl_s`` seconds.
    """

    def __init__(self, ttl_s: float = DEFAULT_CANCELLATION_TTL_S) -> None:
        """Keep each cancellation ``ttl_s`` seconds (default 31 days: the longest delay, a day)."""
        super().__init__(ttl_s)
        self._records: dict[str, tuple[Cancellation, float]] = {}
        self._listeners: set[asyncio.Queue[Cancellation]] = set()

    async def cancel(self, task_id: str, reason: str = "") -> None:
        """Record the cancellation and hand it to every listener."""
        now = time.monotonic()
        self._drop_expired(now)
        cancellation = Cancellation(task_id, reason)
        self._records.pop(task_id, None)  # written again: now the newest, expiring last
        self._records[task_id] = (cancellation, now + self.ttl_s)
        for listener in self._listeners:
            listener.put_nowait(cancellation)

    async def cancellation(self, task_id: str) -> Cancellation | None:
        """Return the unexpired cancellation of ``task_id``, or None."""
        return self.cancellation_now(task_id)

    def cancellation_now(self, task_id: str) -> Cancellation | None:
        """Return the unexpired cancellation of ``task_id``, or None, without awaiting."""
        record = self._records.get(task_id)
        if record is None or record[1] <= time.monotonic():
            return None
        return record[0]

    async def listen(self) -> AsyncGenerator[Cancellation, None]:
        """Return the cancellations recorded from now on (no polling)."""
        queue: asyncio.Queue[Cancellation] = asyncio.Queue()
        self._listeners.add(queue)
        return self._read(queue)

    async def _read(self, queue: asyncio.Queue[Cancellation]) -> AsyncGenerator[Cancellation, None]:
        try:
            while True:
                yield await queue.get()
        finally:
            self._listeners.discard(queue)

    def _drop_expired(self, now: float) -> None:
        # records are in the order they expire (one TTL, rewritten ones moved to the end)
        records = self._records
        while records:
            task_id, (_, expires_at) = next(iter(records.items()))
            if expires_at > now:
                return
            del records[task_id]
