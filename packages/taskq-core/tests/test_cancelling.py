"""Cancellations that are never lost: `await_keeping_cancellation` and `cancel_until_done`."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from taskq.toolkit import await_keeping_cancellation, cancel_until_done


class Call:
    """A call the test steers: it says when it started, and ends once released."""

    def __init__(self, swallows: bool) -> None:
        self.swallows = swallows  # loses a cancellation, as ``wait_for`` before 3.12 can
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.finished = asyncio.Event()

    async def run(self) -> str:
        self.started.set()
        if self.swallows:
            with contextlib.suppress(asyncio.CancelledError):
                await self.release.wait()
        await self.release.wait()
        self.finished.set()
        return "done"


async def test_the_result_of_a_call_that_was_not_cancelled_comes_back() -> None:
    call = Call(swallows=False)
    call.release.set()
    assert await await_keeping_cancellation(call.run()) == "done"


@pytest.mark.parametrize("swallows", [True, False])
async def test_a_cancelled_caller_is_cancelled_and_its_call_is_not_cut_short(
    swallows: bool,
) -> None:
    # cut off after it was sent, a request takes effect unseen (a consumer registered that
    # nobody cancels): the call finishes in the background instead
    call = Call(swallows)
    caller = asyncio.create_task(await_keeping_cancellation(call.run()))
    await call.started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert not call.finished.is_set()
    call.release.set()
    await asyncio.wait_for(call.finished.wait(), 5)


async def test_cancel_until_done_stops_a_task_that_swallows_the_first_cancellation() -> None:
    call = Call(swallows=True)
    task = asyncio.create_task(call.run())
    await call.started.wait()
    await asyncio.wait_for(cancel_until_done(task), 5)
    assert task.cancelled()
