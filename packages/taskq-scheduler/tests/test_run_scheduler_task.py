"""`run_scheduler_task`: the scheduler loop run programmatically, as taskiq's ``taskiq.api``."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from taskq import ScheduledTask, TaskiqEvents
from taskq.api import run_scheduler_task
from taskq_inmemory import InMemoryBroker
from taskq_scheduler import InMemoryScheduleSource, TaskiqScheduler


async def test_sends_due_fires_until_cancelled():
    broker = InMemoryBroker()
    ran = asyncio.Event()

    @broker.task
    async def job() -> None:
        ran.set()

    started: list[bool] = []
    broker.add_event_handler(TaskiqEvents.CLIENT_STARTUP, lambda state: started.append(True))
    now = datetime.now(timezone.utc)
    source = InMemoryScheduleSource([ScheduledTask(task_name=job.task_name, time=now)])
    scheduler = TaskiqScheduler(broker, [source])
    running = asyncio.create_task(
        run_scheduler_task(scheduler, run_startup=True, interval=timedelta(seconds=5))
    )
    try:
        await asyncio.wait_for(ran.wait(), 5)
        assert started == [True]
        assert not running.done()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await broker.shutdown()


async def test_an_interval_of_zero_is_refused_not_read_as_the_default():
    # it was taken for "not given": the sources were then read once a minute, silently
    scheduler = TaskiqScheduler(InMemoryBroker(), [InMemoryScheduleSource([])])
    with pytest.raises(ValueError, match="update_interval must be"):
        await asyncio.wait_for(run_scheduler_task(scheduler, interval=timedelta(0)), 5)
