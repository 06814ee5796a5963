"""Stop an asyncio task for sure: cancel it until it has ended."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_until_done(*tasks: asyncio.Task[Any]) -> None:
    """Cancel each task and wait for it to end, cancelling it again if it went on.

    Before Python 3.12, ``asyncio.wait_for`` inside a client library (redis-py's) can swallow
    a cancellation that arrives as its inner call completes; a consume loop then goes on, and
    a single ``cancel()`` followed by an ``await`` would wait forever.
    """
    for task in tasks:
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1)
