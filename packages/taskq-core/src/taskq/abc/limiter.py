"""The limiter contract: the shared record that enforces rate and concurrency limits."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskq.control.limits import RateLimit


class TaskLimiter(ABC):
    """Decides whether a run may start now, for every worker that shares it.

    One decision is atomic: two workers can never both take the last place. A place under
    ``max_concurrency`` is held by the run's token (its task id) until `release`; an
    implementation shared by several processes holds it under a lease, so that a killed
    worker's places come free.
    """

    @abstractmethod
    async def acquire(
        self, key: str, token: str, rate: RateLimit | None, max_concurrency: int | None
    ) -> float:
        """Start a run under ``key`` if its limits allow it now.

        Returns 0.0 when the run may start (it then counts towards ``rate`` and holds one of
        the ``max_concurrency`` places under ``token``), otherwise the seconds to wait before
        trying again: at least until a place may free up, and for a rate, longer for the runs
        refused after many others, so that waiting runs do not all come back at once. A
        refusal never counts as a start. A limiter whose store cannot answer raises a
        `TaskiqError` (the worker then leaves the message unsettled, for the broker to deliver
        again where it can).
        """

    @abstractmethod
    async def release(self, key: str, token: str) -> None:
        """Give back the concurrency place ``token`` holds under ``key`` (nothing if none)."""

    async def wait(self, key: str, seconds: float) -> None:
        """Wait until trying ``key`` again may succeed, at most ``seconds``.

        The default sleeps ``seconds``; an implementation that learns of releases wakes early.
        """
        await asyncio.sleep(seconds)

    async def startup(self) -> None:
        """Open what the limiter needs (the broker calls it on its startup)."""
        return None  # nothing to open by default

    async def shutdown(self) -> None:
        """Close what the limiter opened (the broker calls it on its shutdown)."""
        return None  # nothing to close by default
