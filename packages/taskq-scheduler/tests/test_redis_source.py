"""RedisScheduleSource against a real Redis: storage, atomic claims, two schedulers sharing it,
restarts that do not send a fire twice, one shots across restarts."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from taskq import InvalidScheduleError, ScheduledTask
from taskq_scheduler import ScheduleSourceUnavailableError, TaskiqScheduler

from .conftest import START, App


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


async def started(source: Any) -> Any:
    await source.startup()
    return source


async def test_schedules_round_trip_and_delete(new_redis_source: Any) -> None:
    source = await started(new_redis_source())
    try:
        schedules = [
            ScheduledTask(
                task_name="t",
                cron="*/5 * * * *",
                cron_offset=timedelta(hours=-3, minutes=-30),
                args=[1, {"a": [2]}],
                kwargs={"k": None},
                labels={"l": "x"},
                task_id="fixed",
                schedule_id="c",
            ),
            ScheduledTask(task_name="t", time=START, schedule_id="o"),
            ScheduledTask(task_name="t", interval=timedelta(seconds=90), schedule_id="i"),
            ScheduledTask(task_name="t", interval=2.5, schedule_id="f"),
        ]
        for schedule in schedules:
            await source.add_schedule(schedule)
        found = {s.schedule_id: s for s in await source.get_schedules()}
        assert found["c"] == schedules[0]
        assert found["o"].time == START
        assert found["i"].interval_seconds == 90
        assert found["f"].interval == 2.5
        await source.delete_schedule("c")
        await source.delete_schedule("never-there")
        assert sorted(s.schedule_id for s in await source.get_schedules()) == ["f", "i", "o"]
    finally:
        await source.shutdown()


async def test_bad_schedules_are_refused_when_added(new_redis_source: Any) -> None:
    source = await started(new_redis_source())
    try:
        with pytest.raises(InvalidScheduleError, match="not a cron"):
            await source.add_schedule(ScheduledTask(task_name="t", cron="every day"))
        with pytest.raises(InvalidScheduleError, match="JSON"):
            await source.add_schedule(ScheduledTask(task_name="t", interval=5, args=[object()]))
        assert await source.get_schedules() == []
    finally:
        await source.shutdown()


async def test_undecodable_entries_are_skipped(new_redis_source: Any, caplog: Any) -> None:
    source = await started(new_redis_source())
    try:
        await source.add_schedule(ScheduledTask(task_name="t", interval=5, schedule_id="ok"))
        stored = json.loads(await source._client().hget(source.schedules_key, "ok"))
        junk = {
            "not-json": b"{not json",
            "a-list": b"[1, 2]",
            "too-deep": b"[" * 100_000 + b"]" * 100_000,
            "huge-interval": json.dumps({**stored, "interval": 10**400}),
            "number-offset": json.dumps(
                {**stored, "interval": None, "cron": "* * * * *", "cron_offset": 5}
            ),
            "number-cron": json.dumps({**stored, "interval": None, "cron": 5}),
            "list-id": json.dumps({**stored, "schedule_id": [1]}),
            "list-labels": json.dumps({**stored, "labels": [1]}),
        }
        await source._client().hset(source.schedules_key, mapping=junk)
        for _ in range(2):
            assert [s.schedule_id for s in await source.get_schedules()] == ["ok"]
        assert sum("undecodable" in r.getMessage() for r in caplog.records) == len(junk)
    finally:
        await source.shutdown()


async def test_a_fire_is_claimed_once_across_instances(new_redis_source: Any) -> None:
    first, second = await started(new_redis_source()), await started(new_redis_source())
    try:
        fire = START
        assert not await first.claim_fire("c", fire), "claimed a fire of a missing schedule"
        await first.add_schedule(ScheduledTask(task_name="t", cron="* * * * *", schedule_id="c"))
        results = await asyncio.gather(*(s.claim_fire("c", fire) for s in [first, second] * 5))
        assert sum(results) == 1
        assert not await second.claim_fire("c", fire - timedelta(minutes=1)), "older fire"
        assert await second.claim_fire("c", fire + timedelta(minutes=1))
        await first.delete_schedule("c")
        assert not await second.claim_fire("c", fire + timedelta(minutes=2))
    finally:
        await first.shutdown()
        await second.shutdown()


async def test_an_unreachable_server_is_a_clear_error() -> None:
    from taskq_redis import RedisUnavailableError
    from taskq_scheduler import RedisScheduleSource

    source = RedisScheduleSource(
        "redis://:hunter2@127.0.0.1:1/0", socket_connect_timeout=1, reconnect_timeout_s=0.2
    )
    silent = r"did not answer for 0\.2 s"
    with pytest.raises(ScheduleSourceUnavailableError, match=silent) as caught:
        await source.startup()
    assert isinstance(caught.value, RedisUnavailableError), "one error family for outages"
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ScheduleSourceUnavailableError, match="not started"):
        await source.get_schedules()


async def run_for(app: App, sources: list[Any], seconds: float, **options: Any) -> None:
    """Run one scheduler per source on the app's clock for ``seconds``, then stop them."""
    schedulers = [TaskiqScheduler(app.broker, [source], clock=app.clock) for source in sources]
    stops = [asyncio.Event() for _ in schedulers]
    tasks = []
    for scheduler, stop in zip(schedulers, stops, strict=True):
        await scheduler.startup()
        asleep = app.clock.sleepers
        tasks.append(asyncio.create_task(scheduler.run(stop, **options)))
        await app.clock.wait_for_sleepers(asleep + 1)
    await app.clock.advance(seconds)
    for stop in stops:
        stop.set()
    await asyncio.gather(*tasks)
    for scheduler in schedulers:
        await scheduler.shutdown()


async def test_two_schedulers_sharing_redis_send_each_fire_once(
    app: App, new_redis_source: Any
) -> None:
    adder = await started(new_redis_source())
    try:
        await app.task.kicker().with_schedule_id("c").schedule_by_cron(adder, "*/10 * * * * *")
        await app.task.kicker().with_schedule_id("i").schedule_by_interval(adder, 7)
        await (
            app.task.kicker()
            .with_schedule_id("o")
            .schedule_by_time(adder, START + timedelta(seconds=33))
        )
    finally:
        await adder.shutdown()
    await run_for(app, [new_redis_source(), new_redis_source()], 120)
    keys = [run.labels["idempotency_key"] for run in app.runs]
    assert len(keys) == len(set(keys)), "a fire was sent twice"
    assert len(app.fire_times("c")) == 1 + 12  # 12:00:30 at start, then every 10 s
    assert len(app.fire_times("i")) == 1 + 17
    assert app.fire_times("o") == [iso(START + timedelta(seconds=33))]


async def test_a_restart_does_not_send_a_fire_again(app: App, new_redis_source: Any) -> None:
    adder = await started(new_redis_source())
    await app.task.kicker().with_schedule_id("m").schedule_by_cron(adder, "* * * * *")
    await adder.shutdown()
    await run_for(app, [new_redis_source()], 40)  # 12:00:30 → 12:01:10: sends 12:00 and 12:01
    assert app.fire_times("m") == [
        iso(START.replace(second=0)),
        iso(START.replace(minute=1, second=0)),
    ]
    # restarted 10 s later, in the same minute: 12:01 fell due 20 s ago, already sent
    app.clock.jump(10)
    await run_for(app, [new_redis_source()], 45)
    assert len(app.fire_times("m")) == 3  # ... and 12:02, once
    # the same with an in-memory source: the start resends 12:02 (nothing remembers it)
    from taskq_scheduler import InMemoryScheduleSource

    memory = InMemoryScheduleSource(
        [ScheduledTask(task_name="record", cron="* * * * *", schedule_id="m")]
    )
    await run_for(app, [memory], 1)
    assert len(app.fire_times("m")) == 4


async def test_a_one_shot_fires_once_across_restarts(app: App, new_redis_source: Any) -> None:
    adder = await started(new_redis_source())
    when = START + timedelta(seconds=5)
    await app.task.kicker().with_schedule_id("once").schedule_by_time(adder, when)
    await run_for(app, [new_redis_source()], 10)
    assert app.fire_times("once") == [iso(when)]
    assert await adder.get_schedules() == [], "a sent one-shot stays in the source"
    await run_for(app, [new_redis_source()], 10)
    assert len(app.fire_times("once")) == 1
    await adder.shutdown()


async def test_a_claimed_one_shot_left_by_a_crash_is_not_sent_again(
    app: App, new_redis_source: Any
) -> None:
    adder = await started(new_redis_source())
    when = START - timedelta(hours=1)
    await app.task.kicker().with_schedule_id("crashed").schedule_by_time(adder, when)
    assert await adder.claim_fire("crashed", when)  # claimed, then the scheduler died
    await run_for(app, [new_redis_source()], 5)
    assert app.fire_times("crashed") == []
    await adder.shutdown()


@pytest.mark.parametrize(
    ("name", "value", "least"),
    [
        ("reconnect_max_delay_s", float("inf"), "greater than 0"),
        ("reconnect_max_delay_s", float("nan"), "greater than 0"),
        ("reconnect_max_delay_s", 0, "greater than 0"),
        ("reconnect_timeout_s", float("inf"), "0 or more"),
        ("reconnect_timeout_s", float("nan"), "0 or more"),
        ("reconnect_timeout_s", -1, "0 or more"),
    ],
)
def test_reconnect_times_that_make_no_sense_are_refused(
    name: str, value: float, least: str
) -> None:
    from taskq_scheduler.redis_source import RedisScheduleSource

    with pytest.raises(ValueError, match=rf"^{name} must be a finite number of seconds {least}"):
        RedisScheduleSource(**{name: value})
