"""The errors of taskq-scheduler beyond taskq's own."""

from __future__ import annotations

from taskq.exceptions import TaskiqError


class ScheduleSourceUnavailableError(TaskiqError):
    """The store behind a schedule source cannot be reached (for Redis: no answer at its URL)."""

    __template__ = "the schedule store cannot be reached"


class ScheduleKeyTypeError(TaskiqError):
    """A key of the schedule store holds another kind of value than the source keeps there.

    The store answered (it is not an outage): for Redis, another program or another part
    wrote a list or a string where the source keeps a hash. Delete that key or give the
    source a prefix of its own. ``key``, ``found`` and ``needed`` say which key and what.
    """

    __template__ = "a key of the schedule store holds another kind of value than it needs"
    key: str
    found: str
    needed: str
