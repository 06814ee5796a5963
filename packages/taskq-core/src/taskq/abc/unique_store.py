"""The unique key store contract: the shared record that keeps a unique task sent once."""

from __future__ import annotations

from abc import ABC, abstractmethod

#: Most bytes (UTF-8) of a key a store keeps as it is; a longer key is kept as its digest.
MAX_STORED_KEY_BYTES = 200
#: The start of a key kept as its SHA-256 digest (`stored_key`).
DIGEST_KEY_PREFIX = "sha256:"


def stored_key(key: str) -> str:
    """The form a store keeps ``key`` under: itself, or ``sha256:`` and its SHA-256 hex digest.

    A key of at most `MAX_STORED_KEY_BYTES` bytes is kept as it is (so it stays readable);
    a longer one, or one starting with `DIGEST_KEY_PREFIX`, as its digest: a 5 MB key, given
    with ``with_unique(key=...)``, would otherwise make a 5 MB Redis key or index entry. Two
    different keys keep different forms, as long as SHA-256 has no collision.
    """
    data = key.encode("utf-8", "surrogatepass")  # a lone surrogate is the store's to refuse
    if len(data) <= MAX_STORED_KEY_BYTES and not key.startswith(DIGEST_KEY_PREFIX):
        return key
    import hashlib  # imported when used: most processes never see a long key

    return DIGEST_KEY_PREFIX + hashlib.sha256(data).hexdigest()


class UniqueKeyStore(ABC):
    """Holds the key of each unique task that is queued or running, with the holder's task id.

    `claim` is atomic: of many clients claiming one key at once, exactly one gets it. A key
    is user data of any length: a store keeps it under `stored_key` (bounded).
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
