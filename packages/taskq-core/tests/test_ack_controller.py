"""`AckController.settle_along`: work sent out together with the broker's ack or reject."""

from __future__ import annotations

import asyncio

from taskq.acks import AckableMessage, AckController


async def test_along_runs_at_the_same_time_as_the_ack_and_only_once():
    events: list[str] = []
    both_started = asyncio.Event()

    async def ack() -> None:
        events.append("ack")
        await both_started.wait()

    async def along() -> None:
        events.append("along")
        both_started.set()  # the ack is still waiting: they run together

    acker = AckController(AckableMessage(b"m", ack))
    acker.settle_along(along)
    await asyncio.wait_for(acker.ack(), 5)
    await acker.ack()
    assert sorted(events) == ["ack", "along"]


async def test_along_runs_with_a_reject_and_not_for_a_message_without_acks():
    ran: list[str] = []

    async def along() -> None:
        ran.append("along")

    rejecting = AckController(AckableMessage(b"m", lambda: None, reject=lambda: None))
    rejecting.settle_along(along)
    await rejecting.reject("bad")
    plain = AckController(b"m")
    plain.settle_along(along)
    await plain.ack()
    assert ran == ["along"]
