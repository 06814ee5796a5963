"""`BatchSender`: one send in flight, the rest batched behind it, errors to every submitter."""

from __future__ import annotations

import asyncio

import pytest

from taskq_redis.batching import BatchSender


async def test_items_submitted_during_a_send_go_together_in_the_next():
    calls: list[list[int]] = []
    release = asyncio.Event()

    async def send(items: list[int]) -> None:
        calls.append(items)
        await release.wait()

    sender = BatchSender(send)
    first = asyncio.create_task(sender.submit(0))
    await asyncio.sleep(0.05)
    submits = [asyncio.create_task(sender.submit(n)) for n in range(1, 5)]
    await asyncio.sleep(0.05)
    assert calls == [[0]]
    release.set()
    await asyncio.gather(first, *submits)
    assert calls == [[0], [1, 2, 3, 4]]
    await sender.drain()
    await sender.submit(5)
    assert calls[-1] == [5]


async def test_items_submitted_in_one_turn_of_the_loop_go_together():
    calls: list[list[int]] = []

    async def send(items: list[int]) -> None:
        calls.append(items)

    sender = BatchSender(send)
    await asyncio.gather(sender.submit(0), sender.submit(1))
    assert calls == [[0, 1]]


async def test_a_failed_first_send_fails_the_items_that_joined_it():
    async def send(items: list[int]) -> None:
        raise ConnectionError("gone")

    sender = BatchSender(send)
    outcomes = await asyncio.gather(sender.submit(0), sender.submit(1), return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [ConnectionError, ConnectionError]
    await sender.drain()


async def test_a_failed_batch_fails_each_of_its_submitters_and_the_sender_goes_on():
    failing = True
    release = asyncio.Event()

    async def send(items: list[int]) -> None:
        await release.wait()
        if failing and len(items) > 1:
            raise ConnectionError("gone")

    sender = BatchSender(send)
    first = asyncio.create_task(sender.submit(0))
    await asyncio.sleep(0.01)  # in flight: what follows waits for the next call
    batch = [asyncio.create_task(sender.submit(n)) for n in (1, 2)]
    await asyncio.sleep(0.01)
    draining = asyncio.create_task(sender.drain())
    release.set()
    await first
    outcomes = await asyncio.gather(*batch, return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    await asyncio.wait_for(draining, 5)
    failing = False
    await sender.submit(3)


async def test_a_cancelled_submitter_does_not_cancel_the_others():
    release = asyncio.Event()
    sent: list[list[int]] = []

    async def send(items: list[int]) -> None:
        await release.wait()
        sent.append(items)

    sender = BatchSender(send)
    first = asyncio.create_task(sender.submit(0))
    await asyncio.sleep(0.01)  # in flight: what follows waits for the next call
    quitter = asyncio.create_task(sender.submit(1))
    stayer = asyncio.create_task(sender.submit(2))
    await asyncio.sleep(0.01)
    quitter.cancel()
    release.set()
    await asyncio.gather(first, stayer)
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert sent == [[0], [1, 2]]
