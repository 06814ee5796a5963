"""`InMemoryScheduleSource`: schedules added and deleted at runtime, kept in this process."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import ClassVar

from taskq.abc.schedule_source import ScheduleSource
from taskq.capabilities import Capability
from taskq.scheduled_task import ScheduledTask
from taskq_scheduler.fire_times import check_schedule


class InMemoryScheduleSource(ScheduleSource):
    """Keeps schedules in a dict: for tests, and for schedules an application adds at runtime.

    Nothing survives the process; several schedulers in one process may share an instance
    (its claims are per instance). A one-shot schedule is deleted once it has been sent.

    Args:
        schedules: Schedules to start with.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.DYNAMIC})

    def __init__(self, schedules: list[ScheduledTask] | None = None) -> None:
        self._schedules: dict[str, ScheduledTask] = {}
        self._claimed: dict[str, datetime] = {}
        for schedule in schedules or []:
            check_schedule(schedule)
            self._schedules[schedule.schedule_id] = copy.deepcopy(schedule)

    async def get_schedules(self) -> list[ScheduledTask]:
        """Return a copy of every schedule."""
        return [copy.deepcopy(schedule) for schedule in self._schedules.values()]

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        """Add ``schedule`` or replace the one with its id; `InvalidScheduleError` if unfireable."""
        check_schedule(schedule)
        self._schedules[schedule.schedule_id] = copy.deepcopy(schedule)

    async def delete_schedule(self, schedule_id: str) -> None:
        """Delete the schedule (no error if there is none)."""
        self._schedules.pop(schedule_id, None)
        self._claimed.pop(schedule_id, None)

    async def claim_fire(self, schedule_id: str, fire_time: datetime) -> bool:
        """Claim the fire once, while the schedule exists, and never an older one."""
        if schedule_id not in self._schedules:
            return False
        last = self._claimed.get(schedule_id)
        if last is not None and fire_time <= last:
            return False
        self._claimed[schedule_id] = fire_time
        return True

    def post_send(self, task: ScheduledTask) -> None:
        """Delete a one-shot schedule once sent."""
        if task.time is not None:
            self._schedules.pop(task.schedule_id, None)
            self._claimed.pop(task.schedule_id, None)
