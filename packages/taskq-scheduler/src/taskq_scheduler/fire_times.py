"""When a schedule fires: its plan of fire times (cron, interval or one shot), and its checks.

Fire times are POSIX seconds. Each next fire time is computed from the previous fire time,
never from "now plus a sleep", so schedules do not drift.

- cron: croniter, in the schedule's ``cron_offset`` (a timezone name, ``"+05:30"`` or a
  timedelta) or else the scheduler's default timezone. Five fields fire to the minute; six
  fire to the second, the seconds field first (``"*/10 * * * * *"``: every ten seconds).
  Daylight saving time changes behave as croniter defines them: a time skipped by the
  change fires at the first instant after it, a time repeated by the change fires twice.
- interval: every multiple of the interval since the Unix epoch, so that every scheduler
  (and a restarted one) agrees on the fire times.
- time: once, at that instant.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from taskq.exceptions import InvalidScheduleError
from taskq.scheduled_task import ScheduledTask

_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{1,2}):?(\d{2})$")
_MEMO_SIZE = 4096


class FirePlan(Protocol):
    """The fire times of a schedule."""

    def next_after(self, instant: float) -> float | None:
        """Return the first fire time strictly after ``instant`` (None: no more fires)."""
        ...

    def latest_until(self, instant: float) -> float | None:
        """Return the last fire time at or before ``instant`` (None: none)."""
        ...


class CronPlan:
    """The fire times of a cron expression in a timezone.

    Consecutive fire times are memoised: schedules sharing an expression share one plan,
    so a tick in which many of them fire computes the next fire time once.
    """

    def __init__(self, expression: str, zone: tzinfo) -> None:
        self.expression = expression
        self.zone = zone
        self.with_seconds = len(expression.split()) == 6
        self._next: dict[float, float] = {}

    def next_after(self, instant: float) -> float | None:
        """Return croniter's next fire time after ``instant`` (None: croniter finds none)."""
        found = self._next.get(instant)
        if found is None:
            try:
                found = self._iterator(instant).get_next(float)
            except CroniterBadDateError:
                return None
            if len(self._next) >= _MEMO_SIZE:
                self._next.clear()
            self._next[instant] = found
        return found

    def latest_until(self, instant: float) -> float | None:
        """Return croniter's last fire time at or before ``instant`` (None: croniter finds none)."""
        try:
            previous: float = self._iterator(instant).get_prev(float)
        except CroniterBadDateError:
            return None
        following = self.next_after(previous)
        return following if following is not None and following <= instant else previous

    def _iterator(self, instant: float) -> croniter:
        start = datetime.fromtimestamp(instant, self.zone)
        return croniter(self.expression, start, second_at_beginning=self.with_seconds)


class IntervalPlan:
    """Every multiple of ``seconds`` since the Unix epoch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def next_after(self, instant: float) -> float:
        """Return the first multiple of the interval after ``instant``."""
        count = instant // self.seconds + 1
        found = count * self.seconds
        if found <= instant:  # float rounding
            found = (count + 1) * self.seconds
        return found

    def latest_until(self, instant: float) -> float:
        """Return the last multiple of the interval at or before ``instant``."""
        found = (instant // self.seconds) * self.seconds
        return found if found <= instant else found - self.seconds


class OneShotPlan:
    """A single fire time."""

    def __init__(self, when: float) -> None:
        self.when = when

    def next_after(self, instant: float) -> float | None:
        """Return the fire time if it is after ``instant``."""
        return self.when if self.when > instant else None

    def latest_until(self, instant: float) -> float | None:
        """Return the fire time if it is at or before ``instant``."""
        return self.when if self.when <= instant else None


def check_schedule(schedule: ScheduledTask, default_zone: tzinfo = timezone.utc) -> None:
    """Raise `InvalidScheduleError` unless the scheduler can fire ``schedule``."""
    plan_for(schedule, default_zone)


def plan_for(schedule: ScheduledTask, default_zone: tzinfo = timezone.utc) -> FirePlan:
    """Return the fire plan of ``schedule``; `InvalidScheduleError` when it has none."""
    if schedule.cron is not None:
        zone = default_zone if schedule.cron_offset is None else parse_zone(schedule.cron_offset)
        return CronPlan(check_cron(schedule.cron), zone)
    if schedule.time is not None:
        return one_shot_plan(schedule.time)
    return IntervalPlan(schedule.interval_seconds)


def one_shot_plan(when: datetime) -> OneShotPlan:
    """Return the plan of a one-shot ``time``.

    `InvalidScheduleError` if it is naive, or if its instant in UTC lies outside the years 1
    to 9999 (``0001-01-01T00:00+01:00``): a fire time must be a datetime in UTC.
    """
    if when.utcoffset() is None:
        raise InvalidScheduleError(reason="time must be timezone-aware")
    try:
        when.astimezone(timezone.utc)
    except OverflowError:
        raise InvalidScheduleError(
            reason=f"time {when.isoformat()} is outside the years 1 to 9999 in UTC"
        ) from None
    return OneShotPlan(when.timestamp())


def check_cron(expression: str) -> str:
    """Return ``expression`` if croniter accepts it with five or six fields, and it ever fires."""
    if not isinstance(expression, str):
        raise InvalidScheduleError(reason=f"a cron expression is a string, not {expression!r}")
    fields = expression.split()
    with_seconds = len(fields) == 6
    if len(fields) not in (5, 6) or not croniter.is_valid(
        expression, second_at_beginning=with_seconds
    ):
        raise InvalidScheduleError(
            reason=f"{expression!r} is not a cron expression: give five fields (minute hour "
            "day month weekday) or six (a seconds field first)"
        )
    try:
        croniter(
            expression, datetime.now(timezone.utc), second_at_beginning=with_seconds
        ).get_next()
    except CroniterBadDateError:
        raise InvalidScheduleError(
            reason=f"{expression!r} never fires: no date matches its day and month fields"
        ) from None
    return expression


def parse_zone(value: str | timedelta) -> tzinfo:
    """Return the timezone a ``cron_offset`` or ``--tz`` names: a zone, ``"+05:30"``, a delta."""
    if isinstance(value, timedelta):
        return _fixed_offset(value, value)
    if not isinstance(value, str):
        raise InvalidScheduleError(
            reason=f"a timezone is a name, an offset or a timedelta, not {value!r}"
        )
    match = _OFFSET.match(value.strip())
    if match:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        return _fixed_offset(-delta if sign == "-" else delta, value)
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidScheduleError(
            reason=f"{value!r} is not a timezone: give an IANA name such as 'Europe/Paris', "
            "an offset such as '+05:30', or a timedelta"
        ) from None


def _fixed_offset(delta: timedelta, given: object) -> tzinfo:
    if abs(delta) >= timedelta(hours=24):
        raise InvalidScheduleError(reason=f"UTC offset {given!r} is not within 24 hours")
    return timezone(delta)
