"""The schedule source suite: what every source must do, then each capability it may declare."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from taskq import Capability, ScheduledTask, TaskiqError
from taskq.toolkit import maybe_await
from taskq_conformance.instances import FACTORY_CONTRACT, NewSource


def schedules() -> list[ScheduledTask]:
    """One schedule of each kind, with arguments and labels to check."""
    marker = uuid.uuid4().hex
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    return [
        ScheduledTask(
            task_name="conformance:cron",
            cron="*/5 * * * *",
            cron_offset="Europe/Paris",
            args=[1, "a"],
            kwargs={"k": marker},
            labels={"l": 1},
            schedule_id=f"cron-{marker}",
        ),
        ScheduledTask(task_name="conformance:time", time=when, schedule_id=f"time-{marker}"),
        ScheduledTask(task_name="conformance:every", interval=30, schedule_id=f"every-{marker}"),
    ]


def same_schedule(got: ScheduledTask, sent: ScheduledTask) -> bool:
    """Whether a schedule read back is the one stored (times compared as instants)."""
    fields = ("task_name", "args", "kwargs", "labels", "schedule_id", "cron", "cron_offset")
    if any(getattr(got, f) != getattr(sent, f) for f in fields):
        return False
    if (got.time is None) != (sent.time is None):
        return False
    if got.time is not None and sent.time is not None and got.time != sent.time:
        return False
    return got.interval_seconds == sent.interval_seconds


# -- mandatory -------------------------------------------------------------------------------


async def test_get_schedules_returns_valid_schedules(taskq_new_schedule_source: NewSource) -> None:
    async with taskq_new_schedule_source() as source:
        found = await source.get_schedules()
        assert isinstance(found, list)
        for schedule in found:
            assert isinstance(schedule, ScheduledTask), f"not a ScheduledTask: {schedule!r}"


async def test_pre_send_and_post_send_can_be_called(taskq_new_schedule_source: NewSource) -> None:
    async with taskq_new_schedule_source() as source:
        for schedule in schedules():
            await maybe_await(source.pre_send(schedule))
            await maybe_await(source.post_send(schedule))


# -- undeclared capabilities fail loudly -------------------------------------------------------


@pytest.mark.taskq_lacks(Capability.DYNAMIC)
async def test_adding_is_refused_without_the_capability(
    taskq_new_schedule_source: NewSource,
) -> None:
    async with taskq_new_schedule_source() as source:
        with pytest.raises(TaskiqError):
            await source.add_schedule(schedules()[0])


# -- declared capabilities -----------------------------------------------------------------------


@pytest.mark.taskq_requires(Capability.DYNAMIC)
async def test_added_schedules_come_back_intact_and_can_be_deleted(
    taskq_new_schedule_source: NewSource,
) -> None:
    async with taskq_new_schedule_source() as source:
        sent = schedules()
        for schedule in sent:
            await source.add_schedule(schedule)
        found = {s.schedule_id: s for s in await source.get_schedules()}
        for schedule in sent:
            assert schedule.schedule_id in found, f"{schedule.schedule_id} was not kept"
            got = found[schedule.schedule_id]
            assert same_schedule(got, schedule), f"changed in the source: {got!r}"
        await source.delete_schedule(sent[0].schedule_id)
        left = {s.schedule_id for s in await source.get_schedules()}
        assert sent[0].schedule_id not in left, "a deleted schedule is still returned"
        assert sent[1].schedule_id in left, "deleting one schedule removed another"
        for schedule in sent[1:]:
            await source.delete_schedule(schedule.schedule_id)


@pytest.mark.taskq_requires(Capability.PERSISTENT)
async def test_schedules_survive_a_new_instance(taskq_new_schedule_source: NewSource) -> None:
    sent = schedules()[2]
    async with taskq_new_schedule_source() as first:
        await first.add_schedule(sent)
    async with taskq_new_schedule_source() as second:
        try:
            found = {s.schedule_id: s for s in await second.get_schedules()}
            assert sent.schedule_id in found, (
                f"a schedule did not survive a new instance; {FACTORY_CONTRACT}"
            )
            assert same_schedule(found[sent.schedule_id], sent)
        finally:
            await second.delete_schedule(sent.schedule_id)


@pytest.mark.taskq_requires(Capability.DYNAMIC)
async def test_adding_an_id_again_replaces_its_schedule(
    taskq_new_schedule_source: NewSource,
) -> None:
    async with taskq_new_schedule_source() as source:
        first = schedules()[2]
        second = ScheduledTask(
            task_name=first.task_name, interval=45, args=[2], schedule_id=first.schedule_id
        )
        await source.add_schedule(first)
        try:
            await source.add_schedule(second)
            found = [s for s in await source.get_schedules() if s.schedule_id == first.schedule_id]
            assert len(found) == 1, "adding an id again kept two schedules"
            assert same_schedule(found[0], second), f"not replaced: {found[0]!r}"
        finally:
            await source.delete_schedule(first.schedule_id)


@pytest.mark.taskq_requires(Capability.PERSISTENT)
async def test_each_fire_is_claimed_once_among_schedulers(
    taskq_new_schedule_source: NewSource,
) -> None:
    # schedulers sharing a persistent source each claim a fire before sending it: exactly
    # one claim of a fire succeeds, an older fire is refused, a later one accepted
    sent = schedules()[0]
    fire = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
    later = fire + timedelta(minutes=5)
    async with taskq_new_schedule_source() as first, taskq_new_schedule_source() as second:
        await first.add_schedule(sent)
        try:
            claims = await asyncio.gather(
                *(source.claim_fire(sent.schedule_id, fire) for source in [first, second] * 4)
            )
            assert sum(claims) == 1, f"{sum(claims)} of 8 claims of one fire succeeded"
            older = fire - timedelta(minutes=5)
            assert not await second.claim_fire(sent.schedule_id, older), (
                "a fire older than one already claimed was claimed"
            )
            assert await second.claim_fire(sent.schedule_id, later), "a later fire was refused"
        finally:
            await first.delete_schedule(sent.schedule_id)
        assert not await second.claim_fire(sent.schedule_id, later + timedelta(minutes=5)), (
            "a fire of a deleted schedule was claimed"
        )


@pytest.mark.taskq_requires(Capability.PERSISTENT)
async def test_claims_survive_a_new_instance(taskq_new_schedule_source: NewSource) -> None:
    # a restarted scheduler must not send again a fire sent before the restart
    sent = schedules()[1]
    assert sent.time is not None
    async with taskq_new_schedule_source() as first:
        await first.add_schedule(sent)
        assert await first.claim_fire(sent.schedule_id, sent.time)
    async with taskq_new_schedule_source() as restarted:
        try:
            assert not await restarted.claim_fire(sent.schedule_id, sent.time), (
                "a new instance claimed a fire claimed before it"
            )
        finally:
            await restarted.delete_schedule(sent.schedule_id)
