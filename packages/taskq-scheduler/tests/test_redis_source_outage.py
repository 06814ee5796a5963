"""RedisScheduleSource through a Redis outage: calls wait it out, log it once, then fail typed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from taskq import ScheduledTask
from taskq.testing import eventually
from taskq_redis import RedisUnavailableError
from taskq_redis.testing import Relay, relayed
from taskq_scheduler import RedisScheduleSource
from taskq_scheduler.redis_source import RedisScheduleSourceUnavailableError

#: Seconds allowed for what must happen "now" on a loaded two-core machine.
PROMPT = 10.0
SOON = datetime.now(timezone.utc) + timedelta(days=1)


def one_shot(schedule_id: str) -> ScheduledTask:
    return ScheduledTask(task_name="record", schedule_id=schedule_id, time=SOON)


@pytest.fixture
async def relay(redis_url: str) -> AsyncIterator[Relay]:
    async with relayed(redis_url) as relay:
        yield relay


@pytest.fixture
async def new_source(relay: Relay, redis_prefix: str) -> AsyncIterator[Any]:
    made: list[RedisScheduleSource] = []

    async def new(**options: Any) -> RedisScheduleSource:
        source = RedisScheduleSource(relay.url, prefix=redis_prefix, **options)
        await source.startup()
        made.append(source)
        return source

    yield new
    for source in made:
        await source.shutdown()


async def test_a_fire_claimed_during_an_outage_is_claimed_when_redis_is_back(
    relay, new_source, caplog
):
    caplog.set_level(logging.WARNING, "taskq.redis")
    source = await new_source()
    await source.add_schedule(one_shot("s1"))
    relay.cut()
    claiming = asyncio.create_task(source.claim_fire("s1", SOON))
    adding = asyncio.create_task(source.add_schedule(one_shot("s2")))
    before = relay.accepted
    await eventually(lambda: relay.accepted >= before + 4, PROMPT, what="retries")
    assert not claiming.done()
    relay.restore()
    assert await asyncio.wait_for(claiming, PROMPT) is True
    await asyncio.wait_for(adding, PROMPT)
    assert {s.schedule_id for s in await source.get_schedules()} == {"s1", "s2"}
    messages = [r.getMessage() for r in caplog.records if r.name == "taskq.redis"]
    lost = [m for m in messages if m.startswith("Lost the connection")]
    assert len(lost) == 1, lost  # two calls failed, one outage
    assert f"Redis at {relay.url}" in lost[0]
    assert len([m for m in messages if m.startswith("Reconnected")]) == 1


async def test_after_reconnect_timeout_s_a_call_fails_typed(relay, new_source):
    source = await new_source(reconnect_timeout_s=0.3, reconnect_max_delay_s=0.05)
    relay.cut()
    with pytest.raises(
        RedisScheduleSourceUnavailableError, match=r"did not answer for 0\.3 s"
    ) as e:
        await source.claim_fire("s1", SOON)
    assert isinstance(e.value, RedisUnavailableError), "one error family for outages"
    relay.restore()
    assert await source.get_schedules() == []


async def test_reading_the_schedules_does_not_retry(relay, new_source):
    # the scheduler keeps its last read: an outage must not hold up its other sources' fires
    source = await new_source(reconnect_timeout_s=PROMPT * 3)
    relay.cut()
    with pytest.raises(RedisScheduleSourceUnavailableError, match="does not answer"):
        await asyncio.wait_for(source.get_schedules(), PROMPT)


@pytest.mark.parametrize("call", ["claim_fire", "delete_schedule", "add_schedule"])
async def test_an_outage_names_a_long_schedule_id_shortened(relay, new_source, caplog, call):
    # a 1 MB schedule id made the outage's warning and error 1 MB long each
    caplog.set_level(logging.WARNING, "taskq.redis")
    source = await new_source(reconnect_timeout_s=0.3, reconnect_max_delay_s=0.05)
    schedule_id = "s" * 1_000_000
    calls = {
        "claim_fire": lambda: source.claim_fire(schedule_id, SOON),
        "delete_schedule": lambda: source.delete_schedule(schedule_id),
        "add_schedule": lambda: source.add_schedule(one_shot(schedule_id)),
    }
    relay.cut()
    with pytest.raises(RedisScheduleSourceUnavailableError) as e:
        await calls[call]()
    lost = [r.getMessage() for r in caplog.records if r.name == "taskq.redis"]
    assert len(lost) == 1, lost
    assert "Lost the connection" in lost[0]
    assert "sssss" in lost[0]
    assert len(lost[0]) < 2_000, len(lost[0])
    assert "sssss" in str(e.value)
    assert len(str(e.value)) < 2_000, len(str(e.value))
