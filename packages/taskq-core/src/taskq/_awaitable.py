"""Calling hooks that may be sync or async."""

from __future__ import annotations

import inspect
from typing import Any


async def maybe_await(value: Any) -> Any:
    """Await ``value`` if it is awaitable, else return it: lets hooks be sync or async."""
    if inspect.isawaitable(value):
        return await value
    return value
