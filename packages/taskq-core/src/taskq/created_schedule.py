"""`CreatedSchedule`: the handle ``schedule_by_cron/time/interval`` return, to unschedule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from taskq.abc.schedule_source import ScheduleSource
    from taskq.kicker import AsyncKicker
    from taskq.scheduled_task import ScheduledTask
    from taskq.task import AsyncTaskiqTask

_ReturnType = TypeVar("_ReturnType")


class CreatedSchedule(Generic[_ReturnType]):
    """A schedule added to a source: ``await handle.unschedule()`` deletes it again.

    Attributes:
        schedule_id: The id of the schedule in its source.
        task: The `ScheduledTask` that was added.
        source: The source that holds it.
    """

    def __init__(
        self,
        kicker: AsyncKicker[Any, _ReturnType],
        source: ScheduleSource,
        task: ScheduledTask,
    ) -> None:
        self.kicker = kicker
        self.source = source
        self.task = task
        self.schedule_id = task.schedule_id

    async def unschedule(self) -> None:
        """Delete the schedule from its source: the scheduler sends it no more."""
        await self.source.delete_schedule(self.schedule_id)

    async def kiq(self) -> AsyncTaskiqTask[Any]:
        """Send the task now, with the schedule's arguments, as if it were not scheduled."""
        return await self.kicker.kiq(*self.task.args, **self.task.kwargs)

    def __repr__(self) -> str:
        when = self.task.cron or self.task.time or self.task.interval
        return f"CreatedSchedule({self.schedule_id!r}, {self.task.task_name!r}, {when!r})"
