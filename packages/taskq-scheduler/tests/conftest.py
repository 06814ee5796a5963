"""Fixtures: a manual clock, an in-memory broker that records what its task ran, a scheduler
running in the background, and a Redis server that skips (or fails, on CI) if absent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest

from taskq import Context, TaskiqDepends
from taskq_inmemory import InMemoryBroker
from taskq_scheduler import ManualClock, TaskiqScheduler
from taskq_scheduler.conformance import DEFAULT_REDIS_URL, REDIS_URL_ENV, delete_redis_keys

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


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server of the tests (``TASKQ_REDIS_URL``); skip without one, fail on CI."""
    redis = pytest.importorskip("redis", reason="the redis extra is not installed")
    url = os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        reason = f"no Redis server at {url} ({exc}); set {REDIS_URL_ENV} to use another"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires Redis: {reason}", pytrace=False)
        pytest.skip(reason)
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Any:
    """A key prefix of this test alone; its keys are deleted after the test."""
    prefix = f"taskq-test-{uuid.uuid4().hex}"
    yield prefix
    delete_redis_keys(redis_url, prefix)


@pytest.fixture
def new_redis_source(redis_url: str, redis_prefix: str) -> Callable[[], Any]:
    """Make (not started) Redis sources on the test's prefix."""
    from taskq_scheduler import RedisScheduleSource

    return lambda: RedisScheduleSource(redis_url, prefix=redis_prefix)
