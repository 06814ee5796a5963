"""The schedule source contract: where a scheduler reads the schedules it sends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, ClassVar

from taskq.capabilities import Capability
from taskq.exceptions import TaskiqError
from taskq.scheduled_task import ScheduledTask


class ScheduleSource(ABC):
    """Provides `ScheduledTask`s to a scheduler.

    A source that can add and delete schedules at runtime declares ``Capability.DYNAMIC``
    and overrides `add_schedule`/`delete_schedule`; one whose schedules survive a new
    instance declares ``Capability.PERSISTENT``. A persistent source is shared by schedulers
    (several processes, or one restarted), so it also overrides `claim_fire`: each fire of
    each schedule is then sent once, by whichever scheduler claims it first.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    async def startup(self) -> None:  # noqa: B027 - optional hook
        """Open connections; called by the scheduler's startup."""

    async def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Close connections; called by the scheduler's shutdown."""

    @abstractmethod
    async def get_schedules(self) -> list[ScheduledTask]:
        """Return every schedule the source holds."""

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        """Add a schedule at runtime (sources with ``Capability.DYNAMIC``)."""
        raise TaskiqError(f"{type(self).__name__} cannot add schedules at runtime")

    async def delete_schedule(self, schedule_id: str) -> None:
        """Delete a schedule at runtime (sources with ``Capability.DYNAMIC``)."""
        raise TaskiqError(f"{type(self).__name__} cannot delete schedules at runtime")

    async def claim_fire(self, schedule_id: str, fire_time: datetime) -> bool:
        """Claim the fire of ``schedule_id`` at ``fire_time``; True: send it, False: skip it.

        The scheduler calls it before each send. A claim must be atomic among the schedulers
        sharing the source, succeed once per fire, and refuse a fire older than one already
        claimed and a fire of a schedule no longer in the source. The default (a source read
        by one scheduler) claims every fire.
        """
        return True

    def pre_send(self, task: ScheduledTask) -> Any | Awaitable[Any]:  # noqa: B027
        """Run before the scheduler sends ``task``; raise `ScheduledTaskCancelledError` to skip."""

    def post_send(self, task: ScheduledTask) -> Any | Awaitable[Any]:  # noqa: B027
        """Run after the scheduler sent ``task``."""
