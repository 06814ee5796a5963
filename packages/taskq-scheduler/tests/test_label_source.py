"""LabelScheduleSource: the ``schedule`` label of tasks, stable ids, bad entries skipped."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from taskq import async_shared_broker
from taskq_inmemory import InMemoryBroker
from taskq_scheduler import LabelScheduleSource, TaskiqScheduler

from .conftest import START, App


async def test_schedules_come_from_labels(caplog: pytest.LogCaptureFixture) -> None:
    broker = InMemoryBroker()

    @broker.task(
        schedule=[
            {"cron": "*/5 * * * *", "args": [1], "labels": {"extra": True}},
            {"interval": 30, "kwargs": {"x": 2}, "schedule_id": "every-30"},
            {"time": "2030-01-01T00:00:00+00:00"},
            {"cron": "nonsense"},
            {"time": "2030-01-01T00:00:00"},
            {"every": 5},
            "not a dict",
            {"cron": 5},
            {"cron": "* * * * *", "cron_offset": 2},
            {"time": 1893456000},
        ],
        timeout=10,
    )
    async def job(*args: Any, **kwargs: Any) -> None: ...

    @broker.task
    async def unscheduled() -> None: ...

    caplog.set_level(logging.ERROR, "taskq.scheduler")
    source = LabelScheduleSource(broker)
    await source.startup()
    found = {s.schedule_id: s for s in await source.get_schedules()}
    assert set(found) == {f"{job.task_name}#0", f"{job.task_name}#2", "every-30"}
    cron = found[f"{job.task_name}#0"]
    assert cron.cron == "*/5 * * * *"
    assert cron.args == [1]
    assert cron.labels == {"timeout": 10, "extra": True}
    assert found["every-30"].kwargs == {"x": 2}
    assert found[f"{job.task_name}#2"].time == datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == 7
    # the same ids at every start
    again = LabelScheduleSource(broker)
    await again.startup()
    assert sorted(s.schedule_id for s in await again.get_schedules()) == sorted(found)


async def test_label_schedules_fire_and_one_shots_are_dropped(
    app: App, start_scheduler: Any
) -> None:
    broker = app.broker
    when = START + timedelta(seconds=10)
    runs: list[str] = []

    @broker.task(schedule=[{"cron": "* * * * *"}, {"time": when}])
    async def labelled() -> None:
        runs.append("ran")

    source = LabelScheduleSource(broker)
    await start_scheduler(TaskiqScheduler(broker, [source], clock=app.clock), skip_first_run=True)
    await app.clock.advance(60)
    assert runs == ["ran", "ran"]  # 12:00:40 (one shot), 12:01
    assert [s.cron for s in await source.get_schedules()] == ["* * * * *"]


async def test_shared_tasks_are_included() -> None:
    @async_shared_broker.task(task_name="shared_scheduled", schedule=[{"interval": 60}])
    async def shared() -> None: ...

    broker = InMemoryBroker()
    source = LabelScheduleSource(broker)
    await source.startup()
    assert [s.task_name for s in await source.get_schedules()] == ["shared_scheduled"]
    # and schedule_by_* through the shared broker knows them too
    from taskq_scheduler import InMemoryScheduleSource

    memory = InMemoryScheduleSource()
    handle = await shared.schedule_by_interval(memory, 5)
    assert handle.task.task_name == "shared_scheduled"


async def test_a_schedule_id_used_twice_keeps_the_first_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = InMemoryBroker()

    @broker.task(task_name="morning", schedule=[{"cron": "0 9 * * *", "schedule_id": "daily"}])
    async def morning() -> None: ...

    @broker.task(task_name="evening", schedule=[{"cron": "0 18 * * *", "schedule_id": "daily"}])
    async def evening() -> None: ...

    caplog.set_level(logging.ERROR, "taskq.scheduler")
    source = LabelScheduleSource(broker)
    await source.startup()
    daily = [s for s in await source.get_schedules() if s.schedule_id == "daily"]
    assert [(s.task_name, s.cron) for s in daily] == [("morning", "0 9 * * *")]
    [line] = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert "'daily'" in line
    assert "'evening'" in line
    assert "'morning'" in line
