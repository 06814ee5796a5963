"""`ScheduledTask`: one schedule: which task to send, with what, and when."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from taskq.exceptions import InvalidScheduleError
from taskq.model_methods import ModelMethods


@dataclass(kw_only=True)
class CronSpec:
    """A cron expression field by field, with the timezone (or UTC offset) it is read in.

    ``seconds`` (default: none) adds a leading seconds field: the expression then fires to
    the second.
    """

    minutes: str | int = "*"
    hours: str | int = "*"
    days: str | int = "*"
    months: str | int = "*"
    weekdays: str | int = "*"
    seconds: str | int | None = None
    offset: str | timedelta | None = None

    def to_cron(self) -> str:
        """Return the cron expression: five fields, or six with the seconds first."""
        fields = [self.minutes, self.hours, self.days, self.months, self.weekdays]
        if self.seconds is not None:
            fields.insert(0, self.seconds)
        return " ".join(str(field) for field in fields)


@dataclass(kw_only=True)
class ScheduledTask(ModelMethods):
    """A task to send on a schedule.

    Exactly one of ``cron`` (a cron expression of five fields, or six with a leading seconds
    field, evaluated in ``cron_offset`` — a timezone name such as ``"Europe/Paris"``, or a UTC
    offset as a timedelta or ``"+05:30"`` — or else in the scheduler's default timezone, UTC),
    ``time`` (an aware datetime: fire once) or ``interval`` (seconds, or a timedelta, of at
    least one second) must be given. ``model_dump``, ``model_validate`` and the other
    pydantic methods give taskiq's results (`model_validate` raises pydantic's
    ``ValidationError`` for a bad schedule).
    """

    task_name: str
    labels: dict[str, Any] = field(default_factory=dict)
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    task_id: str | None = None
    schedule_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    cron: str | None = None
    cron_offset: str | timedelta | None = None
    time: datetime | None = None
    interval: int | float | timedelta | None = None

    def __post_init__(self) -> None:
        """Check that the schedule is well formed; `InvalidScheduleError` says what is wrong.

        (The cron expression and timezone are checked by the scheduler's sources, which know
        the cron library.)
        """
        given = [n for n in ("cron", "time", "interval") if getattr(self, n) is not None]
        if len(given) != 1:
            raise InvalidScheduleError(
                reason=f"a schedule needs exactly one of cron, time or interval; got "
                f"{given or 'none'}"
            )
        if self.time is not None and self.time.utcoffset() is None:
            raise InvalidScheduleError(
                reason="time must be timezone-aware, e.g. datetime.now(timezone.utc)"
            )
        if self.interval is not None and not 1 <= self.interval_seconds < math.inf:  # NaN too
            raise InvalidScheduleError(
                reason=f"interval must be at least 1 second, and finite, got {self.interval!r}"
            )
        if not self.task_name:
            raise InvalidScheduleError(reason="task_name must not be empty")

    @property
    def interval_seconds(self) -> float:
        """The interval in seconds (0 when this is not an interval schedule)."""
        if isinstance(self.interval, timedelta):
            return self.interval.total_seconds()
        return float(self.interval or 0)
