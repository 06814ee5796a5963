"""Fixtures of the middleware tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from taskq import AsyncBroker

Running = Callable[[AsyncBroker], contextlib.AbstractAsyncContextManager[Any]]


@contextlib.asynccontextmanager
async def _running(broker: AsyncBroker) -> AsyncIterator[AsyncBroker]:
    await broker.startup()
    try:
        yield broker
    finally:
        await broker.shutdown()


@pytest.fixture
def running() -> Running:
    """``async with running(broker):`` starts the broker for the block, then shuts it down."""
    return _running
