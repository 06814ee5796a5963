"""Fixtures: a manual clock, an in-memory broker that records what its task ran, a scheduler
running in the background, and a Redis server that skips (or fails, on CI) if absent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest

from taskq import Context, TaskiqDepends
from taskq_inmemory import InMemoryBroker
from taskq_scheduler import ManualClock, TaskiqScheduler

with contextlib.suppress(ImportError):  # without the redis extra, Redis tests cannot run
    from taskq_redis.testing import redis_prefix, redis_url

# the Redis server of the tests (skip without one, fail on CI) and a key prefix per test
__all__ = ["redis_prefix", "redis_url"]

START = datetime(2025, 1, 6, 12, 0, 30, tzinfo=timezone.utc)


@dataclass
class Run:
    """One run of the recorded task: what it got and when, on the manual clock."""

    args: tuple[Any, ...]
    labels: dict[str, Any]
    task_id: str
    at: float


@dataclass
class App:
    """A broker whose task ``record`` keeps every run, and a clock."""

    broker: InMemoryBroker
    clock: ManualClock
    runs: list[Run] = field(default_factory=list)
    task: Any = None

    def fire_times(self, schedule_id: str | None = None) -> list[str]:
        return [
            run.labels["fire_time"]
            for run in self.runs
            if schedule_id is None or run.labels["schedule_id"] == schedule_id
        ]


@pytest.fixture
def app() -> App:
    broker = InMemoryBroker(await_inplace=True)
    made = App(broker=broker, clock=ManualClock(START))

    @broker.task(task_name="record")
    async def record(*args: Any, context: Context = TaskiqDepends()) -> None:
        message = context.message
        made.runs.append(Run(args, dict(message.labels), message.task_id, made.clock.now()))

    made.task = record
    return made


@pytest.fixture
async def start_scheduler() -> AsyncIterator[Callable[..., Any]]:
    """Start schedulers running in the background; they are stopped after the test."""
    running: list[tuple[TaskiqScheduler, asyncio.Event, asyncio.Task[None]]] = []

    async def start(scheduler: TaskiqScheduler, **options: Any) -> asyncio.Task[None]:
        await scheduler.startup()
        stop = asyncio.Event()
        clock = scheduler.clock
        asleep = clock.sleepers if isinstance(clock, ManualClock) else 0
        task = asyncio.create_task(scheduler.run(stop, **options))
        running.append((scheduler, stop, task))
        if isinstance(clock, ManualClock):
            await clock.wait_for_sleepers(asleep + 1)
        return task

    yield start
    for scheduler, stop, task in reversed(running):
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
        await scheduler.shutdown()


@pytest.fixture
def new_redis_source(redis_url: str, redis_prefix: str) -> Callable[[], Any]:
    """Make (not started) Redis sources on the test's prefix."""
    from taskq_scheduler import RedisScheduleSource

    return lambda: RedisScheduleSource(redis_url, prefix=redis_prefix)
