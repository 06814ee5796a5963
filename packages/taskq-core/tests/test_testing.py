"""`taskq.testing`: waiting for a condition instead of a duration."""

from __future__ import annotations

import asyncio
import threading

import pytest

from taskq.testing import eventually, eventually_blocking


async def test_eventually_returns_the_first_true_value_once_the_condition_holds() -> None:
    seen: list[int] = []
    asyncio.get_running_loop().call_later(0.02, seen.append, 7)

    assert await eventually(lambda: seen) == [7]


async def test_eventually_awaits_an_async_condition() -> None:
    async def ready() -> str:
        return "yes"

    assert await eventually(ready) == "yes"


async def test_eventually_fails_with_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"after 0.05 s for the moon"):
        await eventually(lambda: False, 0.05, what="the moon")


def test_eventually_blocking_waits_without_an_event_loop() -> None:
    done = threading.Event()
    threading.Timer(0.02, done.set).start()

    assert eventually_blocking(done.is_set) is True


def test_eventually_blocking_fails_with_the_condition_name_by_default() -> None:
    def never() -> bool:
        return False

    with pytest.raises(AssertionError, match=r"for .*never"):
        eventually_blocking(never, 0.05)


async def test_eventually_refuses_a_nan_timeout_rather_than_waiting_forever() -> None:
    with pytest.raises(ValueError, match="nan"):
        await asyncio.wait_for(eventually(lambda: False, timeout=float("nan")), 10)


def test_eventually_blocking_refuses_a_nan_timeout() -> None:
    calls: list[int] = []

    def never() -> bool:
        calls.append(1)
        if len(calls) > 1000:  # the old code would loop here for good
            raise RuntimeError("still waiting")
        return False

    with pytest.raises(ValueError, match="nan"):
        eventually_blocking(never, timeout=float("nan"), interval=0)
