"""Fire plans: croniter's fire times in a timezone, interval multiples, one shots, and checks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from taskq import InvalidScheduleError, ScheduledTask
from taskq_scheduler.fire_times import (
    CronPlan,
    IntervalPlan,
    OneShotPlan,
    check_schedule,
    parse_zone,
    plan_for,
)

PARIS = ZoneInfo("Europe/Paris")


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=timezone.utc).timestamp()  # type: ignore[misc]


def test_cron_next_and_latest() -> None:
    plan = CronPlan("*/15 * * * *", timezone.utc)
    assert plan.next_after(utc(2025, 1, 1, 10, 0)) == utc(2025, 1, 1, 10, 15)
    assert plan.next_after(utc(2025, 1, 1, 10, 7, 30)) == utc(2025, 1, 1, 10, 15)
    assert plan.latest_until(utc(2025, 1, 1, 10, 15)) == utc(2025, 1, 1, 10, 15)
    assert plan.latest_until(utc(2025, 1, 1, 10, 14, 59)) == utc(2025, 1, 1, 10, 0)


def test_six_fields_put_the_seconds_first() -> None:
    plan = CronPlan("*/2 * * * * *", timezone.utc)
    assert plan.next_after(utc(2025, 1, 1, 10, 0, 1)) == utc(2025, 1, 1, 10, 0, 2)
    plan = CronPlan("30 0 12 * * *", timezone.utc)  # 12:00:30 every day
    assert plan.next_after(utc(2025, 1, 1)) == utc(2025, 1, 1, 12, 0, 30)


def test_cron_in_a_timezone_follows_daylight_saving_as_croniter_does() -> None:
    plan = CronPlan("30 2 * * *", PARIS)
    # 2025-03-30: 02:30 does not exist in Paris; croniter fires at 03:00 (01:00 UTC)
    assert plan.next_after(utc(2025, 3, 29, 12)) == utc(2025, 3, 30, 1)
    assert plan.next_after(utc(2025, 3, 30, 1)) == utc(2025, 3, 31, 0, 30)
    # 2025-10-26: 02:30 happens twice; croniter fires at both
    first = plan.next_after(utc(2025, 10, 25, 12))
    assert first == utc(2025, 10, 26, 0, 30)
    assert plan.next_after(first) == utc(2025, 10, 26, 1, 30)
    assert plan.next_after(utc(2025, 10, 26, 1, 30)) == utc(2025, 10, 27, 1, 30)


def test_interval_fire_times_are_multiples_since_the_epoch() -> None:
    plan = IntervalPlan(30)
    assert plan.next_after(utc(2025, 1, 1, 0, 0, 10)) == utc(2025, 1, 1, 0, 0, 30)
    assert plan.next_after(utc(2025, 1, 1, 0, 0, 30)) == utc(2025, 1, 1, 0, 1)
    assert plan.latest_until(utc(2025, 1, 1, 0, 0, 59)) == utc(2025, 1, 1, 0, 0, 30)
    fractional = IntervalPlan(0.1 * 3)  # not exactly representable
    instant = 0.0
    for _ in range(1000):
        following = fractional.next_after(instant)
        assert following > instant
        instant = following


def test_one_shot() -> None:
    plan = OneShotPlan(100.0)
    assert plan.next_after(99.0) == 100.0
    assert plan.next_after(100.0) is None
    assert plan.latest_until(100.0) == 100.0
    assert plan.latest_until(99.0) is None


@pytest.mark.parametrize(
    ("value", "offset"),
    [
        ("+05:30", timedelta(hours=5, minutes=30)),
        ("-0200", timedelta(hours=-2)),
        ("UTC+01:00", timedelta(hours=1)),
        (timedelta(hours=3), timedelta(hours=3)),
    ],
)
def test_fixed_offsets(value: str | timedelta, offset: timedelta) -> None:
    assert parse_zone(value).utcoffset(None) == offset


def test_zone_names_and_bad_zones() -> None:
    assert parse_zone("Europe/Paris") == PARIS
    assert parse_zone("UTC") == ZoneInfo("UTC")
    for bad in ("Mars/Olympus", "", "../etc/passwd"):
        with pytest.raises(InvalidScheduleError, match="not a timezone"):
            parse_zone(bad)
    with pytest.raises(InvalidScheduleError, match="within 24 hours"):
        parse_zone(timedelta(hours=25))


@pytest.mark.parametrize("expression", ["", "* * * *", "* * * * * * *", "60 * * * *", "a b c d e"])
def test_bad_cron_expressions(expression: str) -> None:
    with pytest.raises(InvalidScheduleError, match="not a cron expression"):
        check_schedule(ScheduledTask(task_name="t", cron=expression or " "))


def test_plan_for_each_kind() -> None:
    moment = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert isinstance(plan_for(ScheduledTask(task_name="t", cron="* * * * *")), CronPlan)
    assert isinstance(plan_for(ScheduledTask(task_name="t", time=moment)), OneShotPlan)
    assert isinstance(plan_for(ScheduledTask(task_name="t", interval=5)), IntervalPlan)
    cron = ScheduledTask(task_name="t", cron="0 9 * * *", cron_offset="Europe/Paris")
    plan = plan_for(cron)
    assert plan.next_after(utc(2025, 1, 1)) == utc(2025, 1, 1, 8)
