"""The errors of taskq-scheduler beyond taskq's own."""

from __future__ import annotations

from taskq.exceptions import TaskiqError


class ScheduleSourceUnavailableError(TaskiqError):
    """The store behind a schedule source cannot be reached (for Redis: no answer at its URL)."""

    __template__ = "the schedule store cannot be reached"
