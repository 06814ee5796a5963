"""Entries written into a Redis source by other code, and many schedules: the scheduler logs
each bad entry once, skips it, and keeps sending the other schedules on time."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from taskq import InvalidScheduleError, ScheduledTask, ScheduleSource
from taskq_scheduler import InMemoryScheduleSource, TaskiqScheduler
from taskq_scheduler.loop import SchedulerLoop

from .conftest import START, App
from .test_redis_source import iso, run_for, started

#: Midnight of 1 January of year 1 at UTC+01:00 is 23:00 UTC in year 0: no datetime holds it.
BEFORE_YEAR_1 = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
AFTER_YEAR_9999 = datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1)))


def stored(schedule: ScheduledTask) -> dict[str, Any]:
    return {
        "task_name": schedule.task_name,
        "labels": {},
        "args": [],
        "kwargs": {},
        "task_id": None,
        "schedule_id": schedule.schedule_id,
        "cron": schedule.cron,
        "cron_offset": None,
        "time": None if schedule.time is None else schedule.time.isoformat(),
        "interval": schedule.interval,
    }


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.mark.parametrize("when", [BEFORE_YEAR_1, AFTER_YEAR_9999])
async def test_a_time_outside_the_years_of_utc_is_refused_when_added(
    new_redis_source: Any, when: datetime
) -> None:
    schedule = ScheduledTask(task_name="record", time=when)
    with pytest.raises(InvalidScheduleError, match="outside the years 1 to 9999"):
        await InMemoryScheduleSource().add_schedule(schedule)
    source = await started(new_redis_source())
    try:
        with pytest.raises(InvalidScheduleError, match="outside the years 1 to 9999"):
            await source.add_schedule(schedule)
    finally:
        await source.shutdown()


async def test_a_stored_time_outside_the_years_of_utc_is_skipped_and_the_others_fire(
    app: App, new_redis_source: Any, caplog: pytest.LogCaptureFixture
) -> None:
    source = await started(new_redis_source())
    try:
        await app.task.kicker().with_schedule_id("good").schedule_by_cron(source, "* * * * *")
        # the scheduler died on this one: its fire time has no datetime in UTC
        entry = {**stored(ScheduledTask(task_name="record", time=START)), "schedule_id": "year-1"}
        entry["time"] = BEFORE_YEAR_1.isoformat()
        await source._client().hset(source.schedules_key, "year-1", json.dumps(entry))
    finally:
        await source.shutdown()
    caplog.set_level(logging.ERROR, "taskq.scheduler")
    await run_for(app, [new_redis_source()], 150, update_interval=10)
    assert app.fire_times("good") == [
        iso(START.replace(second=0) + timedelta(minutes=m)) for m in range(4)
    ]
    skipped = messages(caplog, "year-1")
    assert len(skipped) == 1, skipped
    assert "outside the years 1 to 9999" in skipped[0]


async def test_an_entry_naming_another_schedule_id_is_logged_once_and_skipped(
    app: App, new_redis_source: Any, caplog: pytest.LogCaptureFixture
) -> None:
    source = await started(new_redis_source())
    try:
        await app.task.kicker().with_schedule_id("good").schedule_by_cron(source, "* * * * *")
        # stored under "alias" but naming "elsewhere": its fires were claimed against
        # "elsewhere", which does not exist, so it never fired, and nothing said why
        entry = stored(ScheduledTask(task_name="record", cron="* * * * *", schedule_id="elsewhere"))
        await source._client().hset(source.schedules_key, "alias", json.dumps(entry))
        caplog.set_level(logging.ERROR, "taskq.scheduler")
        for _ in range(3):
            assert [s.schedule_id for s in await source.get_schedules()] == ["good"]
        skipped = messages(caplog, "alias")
        assert len(skipped) == 1, skipped
        assert "InvalidScheduleError" in skipped[0]
        assert "elsewhere" in skipped[0]
    finally:
        await source.shutdown()


async def test_an_entry_of_megabytes_is_logged_bounded(
    new_redis_source: Any, caplog: pytest.LogCaptureFixture
) -> None:
    source = await started(new_redis_source())
    try:
        field = "x" * 1_000_000  # a schedule id of a megabyte, holding a megabyte of garbage
        await source._client().hset(source.schedules_key, field, "[" * 1_000_000)
        caplog.set_level(logging.ERROR, "taskq.scheduler")
        assert await source.get_schedules() == []
        (line,) = messages(caplog, "Skipping undecodable schedule")
        assert len(line) < 2_000, len(line)
    finally:
        await source.shutdown()


async def test_a_last_claim_that_is_not_a_number_is_replaced_and_the_schedule_fires(
    app: App, new_redis_source: Any, caplog: pytest.LogCaptureFixture
) -> None:
    source = await started(new_redis_source())
    try:
        await app.task.kicker().with_schedule_id("s").schedule_by_cron(source, "* * * * *")
        await source._client().hset(source.fires_key, "s", "garbage")
    finally:
        await source.shutdown()
    caplog.set_level(logging.WARNING, "taskq.scheduler")
    await run_for(app, [new_redis_source()], 150, skip_first_run=True)
    assert len(app.fire_times("s")) == 3  # 12:01, 12:02 and 12:03: before, none, ever
    replaced = messages(caplog, "was not a number")
    assert len(replaced) == 1, replaced
    assert not messages(caplog, "was not sent")


async def test_a_replaced_last_claim_of_a_long_schedule_id_is_logged_shortened(
    new_redis_source: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # a 1 MB schedule id made the warning 1 MB long
    schedule_id = "s" * 1_000_000
    caplog.set_level(logging.WARNING, "taskq.scheduler")
    source = await started(new_redis_source())
    try:
        await source.add_schedule(
            ScheduledTask(task_name="record", schedule_id=schedule_id, interval=60)
        )
        await source._client().hset(source.fires_key, schedule_id, "garbage")
        assert await source.claim_fire(schedule_id, START) is True
    finally:
        await source.shutdown()
    (line,) = messages(caplog, "was not a number")
    assert "sssss" in line
    assert len(line) < 2_000, len(line)


async def test_a_read_decodes_only_the_entries_that_changed(
    new_redis_source: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskq_scheduler import redis_source

    decoded: list[bytes] = []
    decode = redis_source.decode_schedule

    def counting(data: bytes) -> ScheduledTask:
        decoded.append(data)
        return decode(data)

    monkeypatch.setattr(redis_source, "decode_schedule", counting)
    caplog.set_level(logging.ERROR, "taskq.scheduler")
    source = await started(new_redis_source())
    client = source._client()
    try:
        for number in range(50):
            await source.add_schedule(
                ScheduledTask(task_name="record", interval=60 + number, schedule_id=f"s{number}")
            )
        await client.hset(source.schedules_key, "junk", "{not json")
        assert len(await source.get_schedules()) == 50
        assert len(decoded) == 51
        assert len(await source.get_schedules()) == 50
        assert len(decoded) == 51, "unchanged entries were decoded again"
        # a changed entry is read again: fixed, broken again (logged again), deleted
        good = json.dumps(stored(ScheduledTask(task_name="record", interval=5, schedule_id="junk")))
        await client.hset(source.schedules_key, "junk", good)
        assert len(await source.get_schedules()) == 51
        await client.hset(source.schedules_key, "junk", "[]")
        assert len(await source.get_schedules()) == 50
        assert len(messages(caplog, "'junk'")) == 2
        await client.hdel(source.schedules_key, "junk")
        await source.get_schedules()
        assert b"junk" not in source._decoded, "a deleted entry is remembered"
    finally:
        await source.shutdown()


async def test_fires_go_out_on_time_while_many_schedules_are_read(
    app: App, start_scheduler: Any
) -> None:
    """Planning each schedule takes a millisecond here: 20,000 of them take 20 s."""
    many = [
        ScheduledTask(task_name="record", cron=f"{n % 60} {n % 24} 1 1 *", schedule_id=f"m{n}")
        for n in range(20_000)
    ]
    every_second = ScheduledTask(task_name="record", cron="* * * * * *", schedule_id="tick")

    class Slow(ScheduleSource):
        async def get_schedules(self) -> list[ScheduledTask]:
            return [every_second, *many]

    find_task = app.broker.find_task

    def slow_find_task(name: str) -> Any:
        app.clock.jump(0.001)
        return find_task(name)

    app.broker.find_task = slow_find_task  # type: ignore[method-assign]
    await start_scheduler(
        TaskiqScheduler(app.broker, [Slow()], clock=app.clock), skip_first_run=True
    )
    assert app.clock.now() - START.timestamp() >= 20
    times = [datetime.fromisoformat(t).timestamp() for t in app.fire_times("tick")]
    assert len(times) >= 19, "fires were skipped while the schedules were read"
    assert times == [START.timestamp() + 1 + n for n in range(len(times))]


async def test_deleted_schedules_leave_no_plans_or_reports_behind(app: App) -> None:
    schedules: list[ScheduledTask] = []

    class Churning(ScheduleSource):
        async def get_schedules(self) -> list[ScheduledTask]:
            return list(schedules)

    loop = SchedulerLoop(TaskiqScheduler(app.broker, [Churning()], clock=app.clock))
    for round_ in range(20):
        schedules[:] = [
            ScheduledTask(
                task_name="record", cron=f"{n} {round_} * * *", schedule_id=f"r{round_}-{n}"
            )
            for n in range(60)
        ] + [ScheduledTask(task_name="nobody", interval=5, schedule_id=f"bad{round_}")]
        await loop.refresh()
    assert loop.schedules == 60
    assert len(loop._plans) <= 2 * 60 + 64
    assert len(loop._reported) == 1
