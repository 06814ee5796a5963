"""Cancellations that are never lost: `await_keeping_cancellation` and `cancel_until_done`."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from taskq.toolkit import await_keeping_cancellation, cancel_until_done


async def swallowing(finished: asyncio.Event, error: Exception | None = None) -> str:
    """A call that loses a cancellation arriving while it runs (as ``wait_for`` before 3.12)."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.01)
    finished.set()
    if error is not None:
        raise error
    return "done"


async def test_the_result_of_a_call_that_was_not_cancelled_comes_back() -> None:
    assert await await_keeping_cancellation(swallowing(asyncio.Event())) == "done"


async def test_a_cancelled_caller_is_cancelled_even_if_its_call_swallows_it() -> None:
    finished = asyncio.Event()
    caller = asyncio.create_task(await_keeping_cancellation(swallowing(finished)))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert not finished.is_set()


async def test_the_call_of_a_cancelled_caller_is_not_cut_short() -> None:
    # cut off after it was sent, a request takes effect unseen (a consumer registered that
    # nobody cancels): the call finishes in the background instead
    finished = asyncio.Event()

    async def request() -> None:
        await asyncio.sleep(0.05)
        finished.set()

    caller = asyncio.create_task(await_keeping_cancellation(request()))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.wait_for(finished.wait(), 5)


async def test_cancel_until_done_stops_a_task_that_swallows_the_first_cancellation() -> None:
    async def loop_that_swallows_once() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        await asyncio.sleep(10)

    task = asyncio.create_task(loop_that_swallows_once())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_until_done(task), 5)
    assert task.cancelled()
