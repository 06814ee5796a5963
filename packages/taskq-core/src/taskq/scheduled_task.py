"""`ScheduledTask`: one schedule: which task to send, with what, and when."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(kw_only=True)
class ScheduledTask:
    """A task to send on a schedule.

    Exactly one of ``cron`` (a cron expression, evaluated in ``cron_offset`` — a timezone name
    or a UTC offset — or UTC), ``time`` (an aware datetime: fire once) or ``interval``
    (seconds, or a timedelta, of at least one second) must be given.
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
        """Check that the schedule is well formed; ValueError says what is wrong."""
        given = [n for n in ("cron", "time", "interval") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a schedule needs exactly one of cron, time or interval; got {given or 'none'}"
            )
        if self.time is not None and self.time.utcoffset() is None:
            raise ValueError("time must be timezone-aware, e.g. datetime.now(timezone.utc)")
        if self.interval is not None and self.interval_seconds < 1:
            raise ValueError(f"interval must be at least 1 second, got {self.interval!r}")
        if not self.task_name:
            raise ValueError("task_name must not be empty")

    @property
    def interval_seconds(self) -> float:
        """The interval in seconds (0 when this is not an interval schedule)."""
        if isinstance(self.interval, timedelta):
            return self.interval.total_seconds()
        return float(self.interval or 0)
