"""`CallDeadline`: a call in flight past its deadline is cancelled; one timer serves them all."""

from __future__ import annotations

import asyncio

import pytest

from taskq_redis.deadline import CallDeadline

FAR_S = 30.0  # a deadline no test reaches
NEAR_S = 0.05  # a deadline the test's call outlasts (it waits up to FAR_S)


async def test_a_call_that_ends_in_time_is_not_cut_off() -> None:
    deadline = CallDeadline()
    assert deadline.start(FAR_S)
    await asyncio.sleep(0)
    assert not deadline.finish()
    deadline.close()


async def test_a_call_past_its_deadline_is_cancelled_and_told_so() -> None:
    deadline = CallDeadline()
    assert deadline.start(NEAR_S)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(FAR_S)
    assert deadline.finish()
    assert not deadline.finish()  # told once


async def test_a_near_deadline_after_a_far_one_moves_the_timer_earlier() -> None:
    deadline = CallDeadline()
    assert deadline.start(FAR_S)
    assert not deadline.finish()
    assert deadline.start(NEAR_S)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(FAR_S)
    assert deadline.finish()


async def test_a_timer_set_for_an_earlier_call_waits_for_the_next_calls_deadline() -> None:
    deadline = CallDeadline()
    assert deadline.start(NEAR_S)
    assert not deadline.finish()
    assert deadline.start(FAR_S)  # the timer still goes off at the first call's deadline
    await asyncio.sleep(NEAR_S * 4)  # past it: not cut off
    assert not deadline.finish()
    deadline.close()


async def test_an_idle_timer_cuts_nothing_off() -> None:
    deadline = CallDeadline()
    assert deadline.start(NEAR_S)
    assert not deadline.finish()
    await asyncio.sleep(NEAR_S * 4)  # the timer goes off with no call in flight
    assert deadline.start(FAR_S)
    await asyncio.sleep(0)
    assert not deadline.finish()
    deadline.close()


async def test_a_second_call_while_one_is_in_flight_is_not_bounded_by_it() -> None:
    deadline = CallDeadline()
    assert deadline.start(FAR_S)
    assert not deadline.start(NEAR_S)  # overlapping calls need a timer each
    assert not deadline.finish()
    deadline.close()


async def test_close_stops_the_timer() -> None:
    deadline = CallDeadline()
    assert deadline.start(NEAR_S)
    deadline.close()
    await asyncio.sleep(NEAR_S * 4)  # no timer: the call runs on
    assert not deadline.finish()
