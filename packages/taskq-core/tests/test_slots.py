"""`Slots`: the consume loop's counting semaphore."""

from __future__ import annotations

import asyncio

from taskq.receiver.slots import Slots


async def test_taking_and_giving_back_counts_free_slots() -> None:
    slots = Slots(2)
    slots.free -= 1
    slots.free -= 1
    assert slots.free == 0
    slots.give_back()
    assert slots.free == 1


async def test_wait_free_returns_at_once_while_a_slot_is_free() -> None:
    slots = Slots(1)
    await asyncio.wait_for(slots.wait_free(), 1)


async def test_wait_free_wakes_when_a_slot_is_given_back() -> None:
    slots = Slots(1)
    slots.free -= 1
    waiting = asyncio.create_task(slots.wait_free())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    slots.give_back()
    await asyncio.wait_for(waiting, 1)
    assert slots.free == 1


async def test_a_cancelled_wait_leaves_the_slots_usable() -> None:
    slots = Slots(1)
    slots.free -= 1
    waiting = asyncio.create_task(slots.wait_free())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    slots.give_back()  # no waiter left to wake: must not fail
    await asyncio.wait_for(slots.wait_free(), 1)
