"""The scheduler loop on a manual clock: cron, seconds, intervals, one shots, the start policy,
idempotency keys, bad input, and several schedulers sharing a source."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from croniter import croniter

from taskq import InvalidScheduleError, ScheduledTask, ScheduleSource
from taskq.control.stores import unique_store_of
from taskq.exceptions import ScheduledTaskCancelledError
from taskq_scheduler import InMemoryScheduleSource, ManualClock, TaskiqScheduler
from taskq_scheduler.fire import TASK_ID_NAMESPACE

from .conftest import START, App


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)  # type: ignore[misc]


def cron(expression: str, schedule_id: str = "s", **more: Any) -> ScheduledTask:
    return ScheduledTask(task_name="record", cron=expression, schedule_id=schedule_id, **more)


async def test_a_cron_schedule_fires_at_each_fire_time_with_its_key_and_labels(
    app: App, start_scheduler: Any
) -> None:
    source = InMemoryScheduleSource(
        [cron("* * * * *", "every-minute", args=[7], labels={"mine": 1})]
    )
    await start_scheduler(
        TaskiqScheduler(app.broker, [source], clock=app.clock), skip_first_run=True
    )
    await app.clock.advance(149)
    assert app.fire_times() == [iso(at(2025, 1, 6, 12, 1)), iso(at(2025, 1, 6, 12, 2))]
    run = app.runs[0]
    assert run.args == (7,)
    assert run.at == at(2025, 1, 6, 12, 1).timestamp()
    key = f"every-minute@{iso(at(2025, 1, 6, 12, 1))}"
    assert run.labels["idempotency_key"] == key
    assert run.labels["schedule_id"] == "every-minute"
    assert run.labels["mine"] == 1
    assert run.task_id == uuid.uuid5(TASK_ID_NAMESPACE, key).hex


async def test_the_start_sends_the_fire_of_the_last_minute_unless_skip_first_run(
    app: App, start_scheduler: Any
) -> None:
    schedules = [cron("* * * * *", "recent"), cron("0 * * * *", "hourly")]
    scheduler = TaskiqScheduler(app.broker, [InMemoryScheduleSource(schedules)], clock=app.clock)
    await start_scheduler(scheduler)
    await app.clock.advance(1)
    # 12:00:00 is 30 s old: sent once at start; the hourly 12:00 too
    assert sorted(app.fire_times()) == [iso(at(2025, 1, 6, 12))] * 2
    assert app.runs[0].at == START.timestamp()


async def test_skip_first_run_sends_nothing_old(app: App, start_scheduler: Any) -> None:
    source = InMemoryScheduleSource(
        [cron("* * * * *"), ScheduledTask(task_name="record", interval=3600)]
    )
    scheduler = TaskiqScheduler(app.broker, [source], clock=app.clock)
    await start_scheduler(scheduler, skip_first_run=True)
    await app.clock.advance(29)
    assert app.runs == []
    await app.clock.advance(1)
    assert app.fire_times() == [iso(at(2025, 1, 6, 12, 1))]


async def test_missed_fires_older_than_a_minute_are_not_backfilled(
    app: App, start_scheduler: Any
) -> None:
    source = InMemoryScheduleSource([cron("30 11 * * *", "daily")])  # 29 min before start
    await start_scheduler(TaskiqScheduler(app.broker, [source], clock=app.clock))
    await app.clock.advance(3600)
    assert app.runs == []


async def test_cron_does_not_drift_over_hours(app: App, start_scheduler: Any) -> None:
    source = InMemoryScheduleSource([cron("*/5 * * * *")])
    await start_scheduler(
        TaskiqScheduler(app.broker, [source], clock=app.clock), skip_first_run=True
    )
    await app.clock.advance(6 * 3600)
    expected = croniter("*/5 * * * *", START).all_next(datetime)
    assert len(app.runs) == 72
    assert app.fire_times() == [iso(next(expected)) for _ in range(72)]
    assert [run.at for run in app.runs] == [
        datetime.fromisoformat(t).timestamp() for t in app.fire_times()
    ]


async def test_six_fields_fire_to_the_second(app: App, start_scheduler: Any) -> None:
    source = InMemoryScheduleSource([cron("*/10 * * * * *")])
    await start_scheduler(
        TaskiqScheduler(app.broker, [source], clock=app.clock), skip_first_run=True
    )
    await app.clock.advance(60)
    seconds = [datetime.fromisoformat(t).second for t in app.fire_times()]
    assert seconds == [40, 50, 0, 10, 20, 30]


async def test_intervals_fire_at_multiples_since_the_epoch(app: App, start_scheduler: Any) -> None:
    source = InMemoryScheduleSource(
        [ScheduledTask(task_name="record", interval=timedelta(seconds=20), schedule_id="i")]
    )
    await start_scheduler(TaskiqScheduler(app.broker, [source], clock=app.clock))
    await app.clock.advance(60)
    # 12:00:20 is 10 s before start: sent at start; then every 20 s
    assert app.fire_times() == [
        iso(at(2025, 1, 6, 12, 0, 20)),
        iso(at(2025, 1, 6, 12, 0, 40)),
        iso(at(2025, 1, 6, 12, 1, 0)),
        iso(at(2025, 1, 6, 12, 1, 20)),
    ]


async def test_a_one_shot_fires_once_and_leaves_the_source(app: App, start_scheduler: Any) -> None:
    when = START + timedelta(seconds=45)
    source = InMemoryScheduleSource([ScheduledTask(task_name="record", time=when, schedule_id="o")])
    await start_scheduler(
        TaskiqScheduler(app.broker, [source], clock=app.clock), update_interval=10
    )
    await app.clock.advance(300)
    assert app.fire_times() == [iso(when)]
    assert await source.get_schedules() == []


async def test_a_past_one_shot_fires_at_once_even_with_skip_first_run(
    app: App, start_scheduler: Any
) -> None:
    when = START - timedelta(days=3)
    source = InMemoryScheduleSource([ScheduledTask(task_name="record", time=when)])
    await start_scheduler(
        TaskiqScheduler(app.broker, [source], clock=app.clock), skip_first_run=True
    )
    await app.clock.advance(1)
    assert app.fire_times() == [iso(when)]


async def test_a_one_shot_the_source_keeps_returning_fires_once(
    app: App, start_scheduler: Any
) -> None:
    class KeepsEverything(ScheduleSource):
        async def get_schedules(self) -> list[ScheduledTask]:
            return [ScheduledTask(task_name="record", time=START, schedule_id="kept")]

    await start_scheduler(
        TaskiqScheduler(app.broker, [KeepsEverything()], clock=app.clock), update_interval=5
    )
    await app.clock.advance(60)
    assert len(app.runs) == 1


async def test_schedules_added_at_runtime_fire_and_unschedule_stops_them(
    app: App, start_scheduler: Any
) -> None:
    source = InMemoryScheduleSource()
    await start_scheduler(
        TaskiqScheduler(app.broker, [source], clock=app.clock), update_interval=10
    )
    handle = (
        await app.task.kicker()
        .with_schedule_id("rt")
        .schedule_by_cron(source, "*/15 * * * * *", "hi")
    )
    assert handle.schedule_id == "rt"
    await app.clock.advance(40)  # seen at 12:00:40, then fires at 12:00:45, 12:01:00, 12:01:10
    assert app.fire_times("rt") == [iso(at(2025, 1, 6, 12, 0, 45)), iso(at(2025, 1, 6, 12, 1))]
    assert app.runs[0].args == ("hi",)
    await handle.unschedule()
    await app.clock.advance(120)
    assert len(app.fire_times("rt")) == 2


async def test_the_decorated_task_schedules_by_time_and_interval(app: App) -> None:
    source = InMemoryScheduleSource()
    one = await app.task.schedule_by_time(source, START + timedelta(hours=1), 1, 2)
    every = await app.task.schedule_by_interval(source, 30)
    found = {s.schedule_id: s for s in await source.get_schedules()}
    assert found[one.schedule_id].args == [1, 2]
    assert found[one.schedule_id].time == START + timedelta(hours=1)
    assert found[every.schedule_id].interval == 30
    task = await one.kiq()
    assert task.task_id
    assert app.runs[-1].args == (1, 2)


async def test_bad_schedules_fail_when_added(app: App) -> None:
    source = InMemoryScheduleSource()
    kicker = app.task.kicker()
    with pytest.raises(InvalidScheduleError, match="not a cron expression"):
        await kicker.schedule_by_cron(source, "61 * * * *")
    with pytest.raises(InvalidScheduleError, match="not a cron expression"):
        await kicker.schedule_by_cron(source, "* * *")
    with pytest.raises(InvalidScheduleError, match="never fires"):
        await kicker.schedule_by_cron(source, "0 12 30 2 *")  # February 30th
    with pytest.raises(InvalidScheduleError, match="timezone-aware"):
        await kicker.schedule_by_time(source, datetime(2030, 1, 1))
    with pytest.raises(InvalidScheduleError, match="at least 1 second"):
        await kicker.schedule_by_interval(source, 0.5)
    from taskq import CronSpec

    with pytest.raises(InvalidScheduleError, match="not a timezone"):
        await kicker.schedule_by_cron(source, CronSpec(minutes=5, offset="Mars/Olympus"))
    from taskq import AsyncKicker, UnknownTaskError

    with pytest.raises(UnknownTaskError, match="no_such_task"):
        await AsyncKicker("no_such_task", app.broker, {}).schedule_by_interval(source, 5)
    assert await source.get_schedules() == []


async def test_a_cron_spec_carries_its_timezone(app: App) -> None:
    from taskq import CronSpec

    source = InMemoryScheduleSource()
    spec = CronSpec(seconds="*/5", minutes=0, hours=9, offset="Europe/Paris")
    handle = await app.task.schedule_by_cron(source, spec)
    (stored,) = await source.get_schedules()
    assert stored.cron == "*/5 0 9 * * *"
    assert stored.cron_offset == "Europe/Paris"
    assert handle.task.cron_offset == "Europe/Paris"


async def test_bad_schedules_in_a_source_are_logged_once_and_skipped(
    app: App, start_scheduler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class Unchecked(ScheduleSource):
        async def get_schedules(self) -> list[ScheduledTask]:
            return [
                cron("not a cron", "bad-cron"),
                cron("* * * * *", "bad-zone", cron_offset="Nowhere/Land"),
                cron("0 0 30 2 *", "never"),
                ScheduledTask(task_name="unknown_task", interval=5, schedule_id="bad-name"),
                cron("* * * * *", "good"),
            ]

    caplog.set_level(logging.ERROR, "taskq.scheduler")
    await start_scheduler(
        TaskiqScheduler(app.broker, [Unchecked()], clock=app.clock),
        skip_first_run=True,
        update_interval=10,
    )
    await app.clock.advance(120)
    assert app.fire_times() == [iso(at(2025, 1, 6, 12, 1)), iso(at(2025, 1, 6, 12, 2))]
    skipped = [r.getMessage() for r in caplog.records if "Skipping schedule" in r.getMessage()]
    assert len(skipped) == 4, skipped
    assert any("bad-cron" in line for line in skipped)
    assert any("never fires" in line for line in skipped)
    assert any("unknown_task" in line for line in skipped)


# a 1 MB schedule id (or task name) read from a source was logged whole in every line
async def test_long_schedule_ids_and_task_names_are_logged_shortened(
    app: App, start_scheduler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    long_id = "s" * 1_000_000
    source = InMemoryScheduleSource(
        [
            cron("* * * * *", long_id),
            ScheduledTask(task_name="t" * 1_000_000, interval=5, schedule_id=long_id + "2"),
        ]
    )
    caplog.set_level(logging.INFO, "taskq.scheduler")
    await start_scheduler(
        TaskiqScheduler(app.broker, [source], clock=app.clock), skip_first_run=True
    )
    await app.clock.advance(60)
    assert app.runs[0].labels["schedule_id"] == long_id  # sent whole
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("taskq.scheduler")]
    assert any(line.startswith("Sent sss") for line in lines)
    assert any(line.startswith("Skipping schedule sss") for line in lines)
    assert max(len(line) for line in lines) < 2_000


async def test_a_failing_source_or_broker_does_not_stop_the_loop(
    app: App, start_scheduler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class Flaky(ScheduleSource):
        reads = 0

        async def get_schedules(self) -> list[ScheduledTask]:
            self.reads += 1
            if self.reads == 2:
                raise ConnectionError("down")
            return [cron("* * * * *", "flaky", labels={"delay": 0})]

    failures = {"left": 1}
    kick = app.broker.kick

    async def failing_kick(message: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("broker down")
        await kick(message)

    app.broker.kick = failing_kick  # type: ignore[method-assign]
    caplog.set_level(logging.ERROR, "taskq.scheduler")
    source = Flaky()
    await start_scheduler(
        TaskiqScheduler(app.broker, [source], clock=app.clock),
        skip_first_run=True,
        update_interval=45,
    )
    await app.clock.advance(180)
    assert source.reads >= 3
    # 12:01 failed to send; 12:02 and 12:03 went out
    assert app.fire_times() == [iso(at(2025, 1, 6, 12, 2)), iso(at(2025, 1, 6, 12, 3))]
    messages = [r.getMessage() for r in caplog.records]
    assert any("was not sent" in m and "broker down" in m for m in messages)
    assert any("Reading the schedules" in m for m in messages)


async def test_pre_send_can_cancel_a_fire(app: App, start_scheduler: Any) -> None:
    class Cancels(InMemoryScheduleSource):
        def pre_send(self, task: ScheduledTask) -> None:
            if task.schedule_id == "cancelled":
                raise ScheduledTaskCancelledError

    source = Cancels([cron("* * * * *", "cancelled"), cron("* * * * *", "kept")])
    await start_scheduler(
        TaskiqScheduler(app.broker, [source], clock=app.clock), skip_first_run=True
    )
    await app.clock.advance(60)
    assert [r.labels["schedule_id"] for r in app.runs] == ["kept"]


async def test_a_loop_that_fell_behind_skips_to_now(app: App) -> None:
    from taskq_scheduler import SchedulerLoop

    source = InMemoryScheduleSource([cron("* * * * *")])
    scheduler = TaskiqScheduler(app.broker, [source], clock=app.clock)
    loop = SchedulerLoop(scheduler, skip_first_run=True)
    await scheduler.startup()
    try:
        await loop.refresh(at_start=True)
        app.clock.jump(3600)  # an hour suspended
        assert await loop.tick() == 1
        assert await loop.tick() == 0
        assert loop.next_fire_time() == at(2025, 1, 6, 13, 1).timestamp()
    finally:
        await scheduler.shutdown()
    assert app.fire_times() == [iso(at(2025, 1, 6, 12, 1))]


async def test_two_schedulers_sharing_a_source_send_each_fire_once(
    app: App, start_scheduler: Any
) -> None:
    source = InMemoryScheduleSource(
        [
            cron("*/20 * * * * *", "c"),
            ScheduledTask(task_name="record", interval=15, schedule_id="i"),
        ]
    )
    for _ in range(2):
        await start_scheduler(TaskiqScheduler(app.broker, [source], clock=app.clock))
    await app.clock.advance(120)
    keys = [run.labels["idempotency_key"] for run in app.runs]
    assert len(keys) == len(set(keys)) == 7 + 9


@pytest.mark.parametrize(
    ("expression", "start", "count"),
    [
        ("30 2 * * *", datetime(2025, 3, 29, 12, tzinfo=timezone.utc), 3),  # spring forward
        ("30 2 * * *", datetime(2025, 10, 25, 12, tzinfo=timezone.utc), 3),  # fall back
        ("*/30 * * * *", datetime(2025, 10, 26, 0, 10, tzinfo=timezone.utc), 6),
        ("*/20 59 * * * *", datetime(2025, 3, 30, 0, 58, tzinfo=timezone.utc), 6),
    ],
)
async def test_daylight_saving_changes_fire_as_croniter_defines(
    app: App, start_scheduler: Any, expression: str, start: datetime, count: int
) -> None:
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")
    clock = ManualClock(start)
    app.clock = clock
    source = InMemoryScheduleSource([cron(expression, cron_offset="Europe/Paris")])
    await start_scheduler(TaskiqScheduler(app.broker, [source], clock=clock), skip_first_run=True)
    expected = croniter(
        expression, start.astimezone(paris), second_at_beginning=len(expression.split()) == 6
    )
    wanted = [expected.get_next(float) for _ in range(count)]
    await clock.advance(wanted[-1] - start.timestamp())
    assert app.fire_times() == [iso(datetime.fromtimestamp(t, timezone.utc)) for t in wanted]


async def test_fall_back_fires_a_repeated_time_twice_and_spring_forward_shifts_it(
    app: App, start_scheduler: Any
) -> None:
    clock = app.clock = ManualClock(datetime(2025, 10, 25, 12, tzinfo=timezone.utc))
    source = InMemoryScheduleSource([cron("30 2 * * *", "fall", cron_offset="Europe/Paris")])
    await start_scheduler(TaskiqScheduler(app.broker, [source], clock=clock))
    await clock.advance(86400)
    # 02:30 happens twice in Paris on 2025-10-26: at 00:30 and 01:30 UTC
    assert app.fire_times() == [iso(at(2025, 10, 26, 0, 30)), iso(at(2025, 10, 26, 1, 30))]


async def test_the_default_timezone_applies_to_crons_without_offset(
    app: App, start_scheduler: Any
) -> None:
    source = InMemoryScheduleSource([cron("0 13 * * *", "lunch")])
    await start_scheduler(TaskiqScheduler(app.broker, [source], clock=app.clock), tz="Europe/Paris")
    await app.clock.advance(3600)
    assert app.fire_times() == [iso(at(2025, 1, 6, 12))]  # 13:00 in Paris, sent at start


async def test_a_schedule_changed_in_its_source_is_replanned(
    app: App, start_scheduler: Any
) -> None:
    source = InMemoryScheduleSource([cron("0 * * * *", "c")])
    await start_scheduler(
        TaskiqScheduler(app.broker, [source], clock=app.clock),
        skip_first_run=True,
        update_interval=10,
    )
    await source.add_schedule(cron("*/2 * * * *", "c"))
    await app.clock.advance(240)
    assert app.fire_times() == [iso(at(2025, 1, 6, 12, 2)), iso(at(2025, 1, 6, 12, 4))]


async def test_the_loop_sends_each_fire_through_on_ready(app: App, start_scheduler: Any) -> None:
    class Tagging(TaskiqScheduler):
        async def on_ready(self, source: ScheduleSource, task: ScheduledTask) -> None:
            calls.append((source, task.schedule_id))
            if task.schedule_id == "skipped":
                return
            tagged = task.model_copy(update={"labels": {**task.labels, "tag": "x"}})
            await super().on_ready(source, tagged)

    calls: list[tuple[ScheduleSource, str]] = []
    source = InMemoryScheduleSource([cron("* * * * *", "kept"), cron("* * * * *", "skipped")])
    await start_scheduler(Tagging(app.broker, [source], clock=app.clock), skip_first_run=True)
    await app.clock.advance(60)
    assert sorted(calls, key=lambda call: call[1]) == [(source, "kept"), (source, "skipped")]
    [run] = app.runs
    key = f"kept@{iso(at(2025, 1, 6, 12, 1))}"
    assert run.labels["tag"] == "x"
    assert run.labels["idempotency_key"] == key
    assert run.task_id == uuid.uuid5(TASK_ID_NAMESPACE, key).hex


async def test_on_ready_called_directly_sends_now_unless_pre_send_cancels(app: App) -> None:
    class Cancels(InMemoryScheduleSource):
        def pre_send(self, task: ScheduledTask) -> None:
            if task.schedule_id == "cancelled":
                raise ScheduledTaskCancelledError

    sent = cron("* * * * *", "now", args=[1], task_id="my-id")
    source = Cancels([])
    scheduler = TaskiqScheduler(app.broker, [source], clock=app.clock)
    await scheduler.startup()
    try:
        await scheduler.on_ready(source, sent)
        await scheduler.on_ready(source, cron("* * * * *", "cancelled"))
    finally:
        await scheduler.shutdown()
    [run] = app.runs
    assert (run.args, run.task_id, run.labels["schedule_id"]) == ((1,), "my-id", "now")
    assert run.labels["fire_time"] == iso(START)


async def test_a_schedule_of_a_unique_kicker_sends_nothing_while_its_key_is_held(
    app: App,
) -> None:
    source = InMemoryScheduleSource([])
    created = await app.task.kicker().with_unique(key="k", ttl=60).schedule_by_interval(source, 60)
    [schedule] = await source.get_schedules()
    assert schedule.labels == {"unique_ttl": 60.0, "unique_key": "k"}
    store = unique_store_of(app.broker)
    assert await store.claim("k", "pending-task", 60) is None  # a task with the key is pending
    scheduler = TaskiqScheduler(app.broker, [source], clock=app.clock)
    await scheduler.startup()
    try:
        await scheduler.on_ready(source, schedule)
        assert app.runs == []  # the broker runs in place: nothing was sent
        await store.release("k", "pending-task")
        await scheduler.on_ready(source, schedule)
    finally:
        await scheduler.shutdown()
    [run] = app.runs
    assert run.labels["unique_key"] == "k"
    assert "unique_ttl" not in run.labels
    assert created.schedule_id == schedule.schedule_id


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf")])
async def test_an_update_interval_that_is_not_a_positive_number_is_refused(
    app: App, interval: float
) -> None:
    scheduler = TaskiqScheduler(app.broker, [InMemoryScheduleSource()], clock=app.clock)
    with pytest.raises(ValueError, match="update_interval"):
        await asyncio.wait_for(scheduler.run(update_interval=interval), 30)


async def test_an_outage_logs_its_unsent_fires_once_a_minute_then_the_recovery(
    app: App, start_scheduler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    down = {"until": app.clock.now() + 150}
    kick = app.broker.kick

    async def kick_unless_down(message: Any) -> None:
        if app.clock.now() < down["until"]:
            raise ConnectionError("broker down")
        await kick(message)

    app.broker.kick = kick_unless_down  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING, "taskq.scheduler")
    source = InMemoryScheduleSource([cron("* * * * * *", "every-second")])
    await start_scheduler(
        TaskiqScheduler(app.broker, [source], clock=app.clock), skip_first_run=True
    )
    await app.clock.advance(180)
    messages = [r.getMessage() for r in caplog.records if r.name == "taskq.scheduler"]
    unsent = [m for m in messages if "was not sent" in m]
    # the 149 fires before the broker came back failed: the first is logged, then one line a
    # minute with the count, then one saying it sends again
    assert len(unsent) == 3, unsent
    assert "in a row" not in unsent[0]
    assert "(61 fires of this schedule not sent in a row)" in unsent[1]
    assert "(121 fires of this schedule not sent in a row)" in unsent[2]
    [recovered] = [m for m in messages if "sends again" in m]
    assert "149 fire(s) before it were not sent" in recovered
    assert app.fire_times()[0] == iso(at(2025, 1, 6, 12, 3, 0))
