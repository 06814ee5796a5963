"""`InMemoryBroker.inspect`: what it counts while the broker runs its own tasks."""

from __future__ import annotations

import asyncio

from taskq.testing import eventually
from taskq_inmemory import InMemoryBroker


async def test_running_tasks_are_in_flight_and_queued_ones_ready_or_delayed() -> None:
    broker = InMemoryBroker(max_async_tasks=1)
    release = asyncio.Event()

    @broker.task
    async def hold() -> None:
        await release.wait()

    async with broker:
        await hold.kiq()
        await hold.kiq()
        await hold.kicker().with_labels(delay=60).kiq()

        async def one_running() -> bool:
            counts = await broker.inspect()
            return (counts.ready, counts.delayed, counts.in_flight) == (1, 1, 1)

        await eventually(one_running)
        counts = await broker.inspect()
        assert counts.dead == 0
        assert [consumer.name for consumer in counts.consumers] == ["listen-1"]
        release.set()
        await eventually(lambda: broker.receiver.running == 0)
        counts = await broker.inspect()
        assert (counts.ready, counts.in_flight) == (0, 0)
