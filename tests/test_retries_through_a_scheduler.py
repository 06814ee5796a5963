"""SmartRetryMiddleware on a broker without `delay`: retries wait in a schedule source."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from taskq import Capability, Context, TaskiqDepends
from taskq_inmemory import InMemoryBroker
from taskq_middlewares import SmartRetryMiddleware
from taskq_scheduler import InMemoryScheduleSource, TaskiqScheduler


class NoDelayBroker(InMemoryBroker):
    """An in-memory broker that, like ZeroMQ, cannot hold a message back."""

    capabilities = InMemoryBroker.capabilities - {Capability.DELAY}


async def test_each_retry_is_sent_by_the_scheduler_after_its_backoff() -> None:
    source = InMemoryScheduleSource()
    broker = NoDelayBroker().with_middlewares(
        SmartRetryMiddleware(default_delay=0.5, use_delay_exponent=True, schedule_source=source)
    )
    runs: list[tuple[Any, float]] = []

    @broker.task(retry_on_error=True, max_retries=3)
    async def flaky(context: Context = TaskiqDepends()) -> str:
        runs.append((context.message.labels.get("_retries"), time.monotonic()))
        if len(runs) < 3:
            raise ConnectionError("down")
        return "up"

    scheduler = TaskiqScheduler(broker, [source])
    await scheduler.startup()
    stop = asyncio.Event()
    loop = asyncio.create_task(scheduler.run(stop, update_interval=0.1))
    try:
        task = await flaky.kiq()
        result = await task.wait_result(timeout=30)
    finally:
        stop.set()
        await loop
        await scheduler.shutdown()
    assert result.return_value == "up"
    assert [retries for retries, _ in runs] == [None, 1, 2]
    waits = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(runs)]
    # the scheduler sends each retry at its time, never before: 0.5 s, then 1 s
    assert waits[0] >= 0.5
    assert waits[1] >= 1.0
    assert await source.get_schedules() == []  # one-shot schedules are gone once sent
