"""RedisScheduleSource when a key of its prefix holds a list or a string instead of a hash:
a typed error naming the key, a few log lines instead of a traceback per read, other sources
firing meanwhile, and a line when it is fixed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any

import pytest
import redis.asyncio as aioredis

from taskq import ScheduledTask
from taskq_scheduler import (
    LabelScheduleSource,
    RedisScheduleSource,
    ScheduleKeyTypeError,
    ScheduleSourceUnavailableError,
    TaskiqScheduler,
)

from .conftest import App

FIRE = datetime(2030, 1, 1, tzinfo=timezone.utc)


def every_second(schedule_id: str) -> ScheduledTask:
    return ScheduledTask(task_name="record", interval=1, schedule_id=schedule_id)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def source(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisScheduleSource]:
    made = RedisScheduleSource(redis_url, prefix=redis_prefix)
    await made.startup()
    yield made
    await made.shutdown()


async def occupy(client: aioredis.Redis, key: str, kind: str) -> None:
    """Put a value of ``kind`` (``list`` or ``string``) at ``key``, as other code might."""
    await client.delete(key)
    if kind == "list":
        await client.rpush(key, "not a schedule")
    else:
        await client.set(key, "not a schedule")


def scheduler_lines(caplog: Any, *parts: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "taskq.scheduler" and all(part in record.getMessage() for part in parts)
    ]


@pytest.mark.parametrize("kind", ["list", "string"])
async def test_the_schedules_key_of_another_type_fails_every_call_typed(
    source: RedisScheduleSource, client: aioredis.Redis, kind: str
) -> None:
    await occupy(client, source.schedules_key, kind)
    calls: dict[str, Callable[[], Any]] = {
        "read the schedules": source.get_schedules,
        "store schedule 's1'": lambda: source.add_schedule(every_second("s1")),
        "delete schedule 's1'": lambda: source.delete_schedule("s1"),
        "claim a fire of schedule 's1'": lambda: source.claim_fire("s1", FIRE),
    }
    for action, call in calls.items():
        with pytest.raises(ScheduleKeyTypeError) as caught:
            await call()
        error = caught.value
        assert not isinstance(error, ScheduleSourceUnavailableError), "Redis answered"
        assert (error.key, error.found, error.needed) == (source.schedules_key, kind, "hash")
        message = str(error)
        assert message.startswith(f"cannot {action}: the key '{source.schedules_key}'")
        assert f"holds a {kind}, not a hash" in message
        assert "delete that key or give the source another prefix" in message
    assert await client.type(source.schedules_key) == kind.encode(), "left as it was"


async def test_a_fires_key_of_another_type_fails_the_claims_and_deletes_typed(
    source: RedisScheduleSource, client: aioredis.Redis
) -> None:
    await occupy(client, source.fires_key, "list")
    await source.add_schedule(every_second("s1"))
    assert [s.schedule_id for s in await source.get_schedules()] == ["s1"]
    with pytest.raises(ScheduleKeyTypeError, match="last claimed fire of each schedule") as e:
        await source.claim_fire("s1", FIRE)
    assert e.value.key == source.fires_key
    with pytest.raises(ScheduleKeyTypeError, match="holds a list, not a hash"):
        await source.delete_schedule("s1")


async def test_a_long_prefix_is_quoted_bounded(
    redis_url: str, redis_prefix: str, client: aioredis.Redis
) -> None:
    source = RedisScheduleSource(redis_url, prefix=redis_prefix + "x" * 10_000)
    await source.startup()
    try:
        await occupy(client, source.schedules_key, "string")
        with pytest.raises(ScheduleKeyTypeError) as caught:
            await source.get_schedules()
        assert len(str(caught.value)) < 1000
    finally:
        await client.delete(source.schedules_key)
        await source.shutdown()


async def test_reads_of_a_wrong_type_are_logged_a_few_times_while_other_sources_fire(
    app: App,
    start_scheduler: Any,
    source: RedisScheduleSource,
    client: aioredis.Redis,
    caplog: Any,
) -> None:
    ticks: list[str] = []

    @app.broker.task(task_name="tick", schedule=[{"interval": 1, "schedule_id": "tick"}])
    async def tick() -> None:
        ticks.append("tick")

    caplog.set_level(logging.INFO, "taskq.scheduler")
    await occupy(client, source.schedules_key, "list")
    scheduler = TaskiqScheduler(
        app.broker, [LabelScheduleSource(app.broker), source], clock=app.clock
    )
    await start_scheduler(scheduler, skip_first_run=True, update_interval=1)
    await app.clock.advance(20)  # 20 reads of the schedules
    failing = scheduler_lines(caplog, "Reading the schedules of RedisScheduleSource(")
    assert len(failing) == 1, [r.getMessage() for r in failing]
    assert failing[0].levelno == logging.ERROR
    assert failing[0].exc_info is None, "the message says it all: no traceback"
    assert "ScheduleKeyTypeError" in failing[0].getMessage()
    assert "holds a list, not a hash" in failing[0].getMessage()
    assert len(ticks) >= 19, "the label schedule fires meanwhile"

    await app.clock.advance(60)  # a reminder a minute
    failing = scheduler_lines(caplog, "Reading the schedules of RedisScheduleSource(")
    assert len(failing) == 2
    assert "still fails" in failing[1].getMessage()

    await occupy(client, source.schedules_key, "string")  # another error: said at once
    await app.clock.advance(1)
    failing = scheduler_lines(caplog, "Reading the schedules of RedisScheduleSource(")
    assert len(failing) == 3
    assert "holds a string" in failing[2].getMessage()

    await client.delete(source.schedules_key)
    await source.add_schedule(every_second("redis"))
    await app.clock.advance(3)
    fixed = scheduler_lines(caplog, "works again")
    assert len(fixed) == 1
    assert fixed[0].levelno == logging.WARNING
    assert "Reading the schedules of RedisScheduleSource(" in fixed[0].getMessage()
    assert app.fire_times("redis"), "its schedules fire again"


async def test_claims_on_a_fires_key_of_a_wrong_type_are_logged_once_for_the_source(
    app: App,
    start_scheduler: Any,
    source: RedisScheduleSource,
    client: aioredis.Redis,
    caplog: Any,
) -> None:
    caplog.set_level(logging.INFO, "taskq.scheduler")
    for schedule_id in ("a", "b", "c"):
        await source.add_schedule(every_second(schedule_id))
    await occupy(client, source.fires_key, "string")
    scheduler = TaskiqScheduler(app.broker, [source], clock=app.clock)
    await start_scheduler(scheduler, skip_first_run=True, update_interval=1)
    await app.clock.advance(20)  # 60 claims, all refused
    assert app.runs == []
    claims = scheduler_lines(caplog, "Claiming the fires of RedisScheduleSource(")
    assert len(claims) == 1, [r.getMessage() for r in claims]
    assert claims[0].exc_info is None
    assert "holds a string, not a hash" in claims[0].getMessage()
    assert scheduler_lines(caplog, "was not sent") == []

    await client.delete(source.fires_key)
    await app.clock.advance(2)
    assert {r.labels["schedule_id"] for r in app.runs} == {"a", "b", "c"}
    fixed = scheduler_lines(caplog, "works again")
    assert len(fixed) == 1
    assert "Claiming the fires of RedisScheduleSource(" in fixed[0].getMessage()
