"""Task ids: random version-4 UUIDs as 32 hex digits, drawn from the OS a batch at a time."""

from __future__ import annotations

import os

#: Ids made per read of the OS's random source (one system call instead of one per id).
BATCH = 64

_pool: list[str] = []
_AS_VERSION_4 = bytes(byte & 0x0F | 0x40 for byte in range(256))
_AS_RFC_4122_VARIANT = bytes(byte & 0x3F | 0x80 for byte in range(256))


def default_id_generator() -> str:
    """Return a new random task id: a version-4 UUID as 32 hex digits, like ``uuid4().hex``.

    Safe to call from any thread (``list.pop`` hands each id out once); a forked child
    starts with an empty pool, so it never repeats its parent's ids.
    """
    try:
        return _pool.pop()
    except IndexError:
        _pool.extend(_fresh_ids())
        return _pool.pop()


def _fresh_ids() -> list[str]:
    raw = bytearray(os.urandom(16 * BATCH))
    raw[6::16] = raw[6::16].translate(_AS_VERSION_4)
    raw[8::16] = raw[8::16].translate(_AS_RFC_4122_VARIANT)
    digits = raw.hex()
    return [digits[start : start + 32] for start in range(0, 32 * BATCH, 32)]


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_pool.clear)
