"""The unique key store contract: the shared record that keeps a unique task sent once."""

from __future__ import annotations

from abc import ABC, abstractmethod


class UniqueKeyStore(ABC):
    """Holds the key of each unique task that is queued or running, with the holder's task id.

    `claim` is atomic: of many clients claiming one key at once, exactly one gets it.
    """

    @abstractmethod
    async def claim(self, key: str, task_id: str, ttl_s: float) -> str | None:
        """Hold ``key`` for ``task_id`` for ``ttl_s`` seconds unless another task holds it.

        Returns None when ``task_id`` now holds the key, otherwise the holder's task id.
        """

    @abstractmethod
    async def release(self, key: str, task_id: str) -> None:
        """Free ``key`` if ``task_id`` holds it (a key another task claimed since stays)."""

    async def startup(self) -> None:
        """Open what the store needs (the broker calls it on its startup)."""
        return None  # nothing to open by default

    async def shutdown(self) -> None:
        """Close what the store opened (the broker calls it on its shutdown)."""
        return None  # nothing to close by default
