"""`MemoryUniqueStore`: unique task keys for the clients and workers of one process."""

from __future__ import annotations

import time

from taskq.abc.unique_store import UniqueKeyStore, stored_key


class MemoryUniqueStore(UniqueKeyStore):
    """Keeps each held key (its `stored_key` form) with its holder and expiry in a dict.

    The default store of a broker whose workers share one process (the in-memory broker).
    """

    def __init__(self) -> None:
        """Start with no key held."""
        self._held: dict[str, tuple[str, float]] = {}

    async def claim(self, key: str, task_id: str, ttl_s: float) -> str | None:
        """Hold ``key`` for ``task_id`` unless it is held (see `UniqueKeyStore.claim`)."""
        key = stored_key(key)
        now = time.monotonic()
        held = self._held.get(key)
        if held is not None and held[1] > now:
            return None if held[0] == task_id else held[0]  # its own: a claim made again
        self._held[key] = (task_id, now + ttl_s)
        if len(self._held) > 1 and held is None:
            self._forget_expired(now)
        return None

    async def release(self, key: str, task_id: str) -> None:
        """Free ``key`` if ``task_id`` holds it."""
        key = stored_key(key)
        held = self._held.get(key)
        if held is not None and held[0] == task_id:
            del self._held[key]

    def _forget_expired(self, now: float) -> None:
        # amortised: a sweep each time the store doubles keeps it bounded by the live keys
        if len(self._held) & (len(self._held) - 1) == 0:
            for key in [key for key, (_, expiry) in self._held.items() if expiry <= now]:
                del self._held[key]
