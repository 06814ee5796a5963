"""``schedule_by_cron/time/interval`` on kickers and tasks: the schedule they add, the handle
they return, and the errors they raise when the schedule is added."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from taskq import (
    AsyncKicker,
    CreatedSchedule,
    CronSpec,
    InvalidScheduleError,
    ScheduledTask,
    ScheduleSource,
    UnknownTaskError,
    async_shared_broker,
)
from taskq_inmemory import InMemoryBroker

WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


class DictSource(ScheduleSource):
    def __init__(self) -> None:
        self.schedules: dict[str, ScheduledTask] = {}

    async def get_schedules(self) -> list[ScheduledTask]:
        return list(self.schedules.values())

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        self.schedules[schedule.schedule_id] = schedule

    async def delete_schedule(self, schedule_id: str) -> None:
        del self.schedules[schedule_id]


@pytest.fixture
def broker() -> InMemoryBroker:
    return InMemoryBroker(await_inplace=True)


async def test_each_kind_adds_its_schedule(broker: InMemoryBroker) -> None:
    @broker.task(task_name="job", retry=3)
    async def job(a: int, b: str = "") -> str:
        return f"{a}{b}"

    source = DictSource()
    by_cron = await job.schedule_by_cron(source, "*/5 * * * *", 1, b="x")
    by_time = await job.schedule_by_time(source, WHEN, 2)
    by_interval = (
        await job.kicker()
        .with_labels(extra=1)
        .schedule_by_interval(source, timedelta(minutes=1), 3)
    )
    assert isinstance(by_cron, CreatedSchedule)
    stored = source.schedules
    assert stored[by_cron.schedule_id].cron == "*/5 * * * *"
    assert stored[by_cron.schedule_id].args == [1]
    assert stored[by_cron.schedule_id].kwargs == {"b": "x"}
    assert stored[by_cron.schedule_id].labels == {"retry": 3}
    assert stored[by_time.schedule_id].time == WHEN
    assert stored[by_interval.schedule_id].interval_seconds == 60
    assert stored[by_interval.schedule_id].labels == {"retry": 3, "extra": 1}
    assert len({by_cron.schedule_id, by_time.schedule_id, by_interval.schedule_id}) == 3
    assert "job" in repr(by_cron)
    result = await (await by_cron.kiq()).wait_result(timeout=10)
    assert result.return_value == "1x"
    await by_cron.unschedule()
    assert by_cron.schedule_id not in stored


async def test_ids_and_cron_specs(broker: InMemoryBroker) -> None:
    @broker.task(task_name="job")
    async def job() -> None: ...

    source = DictSource()
    spec = CronSpec(seconds=30, minutes="*/2", offset=timedelta(hours=2))
    handle = (
        await job.kicker()
        .with_schedule_id("mine")
        .with_task_id("tid")
        .schedule_by_cron(source, spec)
    )
    assert handle.schedule_id == "mine"
    assert source.schedules["mine"].cron == "30 */2 * * * *"
    assert source.schedules["mine"].cron_offset == timedelta(hours=2)
    assert source.schedules["mine"].task_id == "tid"
    assert CronSpec(hours=9, weekdays="mon-fri").to_cron() == "* 9 * * mon-fri"


async def test_bad_schedules_raise_before_reaching_the_source(broker: InMemoryBroker) -> None:
    @broker.task(task_name="job")
    async def job() -> None: ...

    source = DictSource()
    with pytest.raises(InvalidScheduleError, match="timezone-aware"):
        await job.schedule_by_time(source, WHEN.replace(tzinfo=None))
    with pytest.raises(InvalidScheduleError, match="at least 1 second"):
        await job.schedule_by_interval(source, 0)
    with pytest.raises(UnknownTaskError, match="'elsewhere'"):
        await AsyncKicker("elsewhere", broker, {}).schedule_by_cron(source, "* * * * *")
    assert source.schedules == {}
    assert issubclass(InvalidScheduleError, ValueError)


async def test_shared_tasks_and_the_shared_broker_know_their_tasks(broker: InMemoryBroker) -> None:
    @async_shared_broker.task(task_name="shared_job_for_schedules")
    async def shared() -> None: ...

    @broker.task(task_name="only_on_the_real_broker")
    async def local() -> None: ...

    source = DictSource()
    await shared.schedule_by_interval(source, 5)
    await AsyncKicker("shared_job_for_schedules", broker, {}).schedule_by_interval(source, 5)
    async_shared_broker.default_broker(broker)
    try:
        kicker = AsyncKicker("only_on_the_real_broker", async_shared_broker, {})
        await kicker.schedule_by_interval(source, 5)
    finally:
        async_shared_broker._default_broker = None
    assert len(source.schedules) == 3
    with pytest.raises(UnknownTaskError):
        await AsyncKicker("nowhere", async_shared_broker, {}).schedule_by_interval(source, 5)


async def test_a_source_claims_every_fire_by_default() -> None:
    assert await DictSource().claim_fire("any", WHEN)
    with pytest.raises(Exception, match="cannot add"):
        await ScheduleSource.add_schedule(DictSource(), ScheduledTask(task_name="t", interval=5))
