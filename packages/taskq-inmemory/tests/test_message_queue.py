"""`MessageQueue`: priority lanes, FIFO within a priority, delays, waiting consumers."""

from __future__ import annotations

import asyncio

import pytest

from taskq_inmemory import message_queue
from taskq_inmemory.message_queue import MessageQueue


def drain(queue: MessageQueue) -> list[bytes]:
    taken = []
    while (data := queue.get_nowait()) is not None:
        taken.append(data)
    return taken


def test_higher_priority_first_then_first_in_first_out() -> None:
    queue = MessageQueue()
    for data, priority in ((b"a", 0), (b"b", 5), (b"c", -1), (b"d", 5), (b"e", 0), (b"f", 1)):
        queue.put(data, priority)
    assert len(queue) == 6
    assert drain(queue) == [b"b", b"d", b"f", b"a", b"e", b"c"]
    assert len(queue) == 0


def test_a_priority_emptied_and_used_again_keeps_its_place() -> None:
    queue = MessageQueue()
    queue.put(b"low", 0)
    queue.put(b"high", 3)
    assert queue.get_nowait() == b"high"
    queue.put(b"high again", 3)
    assert drain(queue) == [b"high again", b"low"]


class Clock:
    """A ``time`` module stand-in whose ``monotonic()`` moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_a_due_delayed_message_queues_behind_what_is_available(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # on the real clock, a loaded machine could let the delay pass between the first two puts
    clock = Clock()
    monkeypatch.setattr(message_queue, "time", clock)
    queue = MessageQueue()
    queue.put(b"later", 0, delay=0.01)
    queue.put(b"now", 0)
    assert len(queue) == 2
    clock.now += 0.02
    queue.put(b"after it fell due", 0)
    assert drain(queue) == [b"now", b"later", b"after it fell due"]


async def test_a_due_delayed_message_of_higher_priority_goes_first() -> None:
    queue = MessageQueue()
    queue.put(b"plain", 0)
    queue.put(b"urgent", 9, delay=0.01)
    await asyncio.sleep(0.02)
    assert drain(queue) == [b"urgent", b"plain"]


async def test_a_waiting_consumer_wakes_for_a_put_and_for_a_due_message() -> None:
    queue = MessageQueue()
    getting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put(b"x")
    assert await asyncio.wait_for(getting, 1) == b"x"
    queue.put(b"y", delay=0.01)
    assert await asyncio.wait_for(queue.get(), 1) == b"y"


async def test_close_lets_waiters_go_and_counts_dropped_delayed_messages() -> None:
    queue = MessageQueue()
    getting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put(b"later", delay=60)
    assert queue.close() == 1
    assert await asyncio.wait_for(getting, 1) is None


async def test_put_many_keeps_the_order_priorities_and_delays_of_single_puts() -> None:
    queue = MessageQueue()
    # half a second: a loaded machine can pause this test for longer than a short delay
    queue.put_many([(b"a", 0, 0.0), (b"b", 5, 0.0), (b"late", 9, 0.5), (b"c", 0, 0.0)])
    assert (queue.ready, queue.delayed) == (3, 1)
    assert drain(queue) == [b"b", b"a", b"c"]
    assert await asyncio.wait_for(queue.get(), 10) == b"late"


async def test_put_many_wakes_a_waiting_consumer_per_available_message() -> None:
    queue = MessageQueue()
    getters = [asyncio.create_task(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    queue.put_many([(b"x", 0, 0.0), (b"y", 0, 0.0), (b"z", 0, 0.01)])
    got = await asyncio.wait_for(asyncio.gather(*getters), 1)
    assert sorted(got) == [b"x", b"y", b"z"]
