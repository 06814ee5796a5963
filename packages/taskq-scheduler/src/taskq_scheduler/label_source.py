"""`LabelScheduleSource`: the schedules written in the ``schedule`` label of a broker's tasks.

::

    @broker.task(schedule=[{"cron": "*/5 * * * *", "args": [1]}, {"interval": 30}])
    async def tick(n: int = 0) -> None: ...

Each entry has one of ``cron`` (with an optional ``cron_offset``), ``time`` (an aware datetime
or an ISO 8601 string with an offset) or ``interval`` (seconds), and optionally ``args``,
``kwargs``, ``labels`` and ``schedule_id`` (default ``<task name>#<index in the list>``, the
same at every start). The task's other labels are sent along.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from taskq.abc.broker import AsyncBroker
from taskq.abc.schedule_source import ScheduleSource
from taskq.exceptions import InvalidScheduleError
from taskq.scheduled_task import ScheduledTask
from taskq_scheduler.fire_times import check_schedule

logger = logging.getLogger("taskq.scheduler")

SCHEDULE_LABEL = "schedule"
_KNOWN_KEYS = frozenset(
    {"cron", "cron_offset", "time", "interval", "args", "kwargs", "labels", "schedule_id"}
)


class LabelScheduleSource(ScheduleSource):
    """Reads the ``schedule`` label of every task of ``broker`` when started.

    An entry that is not a valid schedule, or whose ``schedule_id`` an entry read before it
    already has, is logged (once, at startup) and skipped. A one-shot entry is dropped once
    sent; but labels are read again at every start, where a past one fires again: keep
    one-shot schedules in a persistent source.
    """

    def __init__(self, broker: AsyncBroker) -> None:
        self.broker = broker
        self.schedules: dict[str, ScheduledTask] = {}

    async def startup(self) -> None:
        """Collect the schedules of the broker's tasks (those registered by now)."""
        self.schedules.clear()
        for task_name, task in self.broker.get_all_tasks().items():
            entries = task.labels.get(SCHEDULE_LABEL) or []
            if not isinstance(entries, list):
                entries = [entries]
            task_labels = {k: v for k, v in task.labels.items() if k != SCHEDULE_LABEL}
            for index, entry in enumerate(entries):
                try:
                    schedule = schedule_from_label(task_name, index, entry, task_labels)
                except InvalidScheduleError as error:
                    logger.error("Task %r: schedule label #%d skipped: %s", task_name, index, error)
                    continue
                taken = self.schedules.get(schedule.schedule_id)
                if taken is not None:
                    logger.error(
                        "Task %r: schedule label #%d skipped: its schedule_id %r is already "
                        "used by a schedule of task %r",
                        task_name,
                        index,
                        schedule.schedule_id,
                        taken.task_name,
                    )
                    continue
                self.schedules[schedule.schedule_id] = schedule

    async def get_schedules(self) -> list[ScheduledTask]:
        """Return the schedules collected at startup."""
        return list(self.schedules.values())

    def post_send(self, task: ScheduledTask) -> None:
        """Drop a one-shot schedule once sent."""
        if task.time is not None:
            self.schedules.pop(task.schedule_id, None)


def schedule_from_label(
    task_name: str, index: int, entry: Any, task_labels: dict[str, Any]
) -> ScheduledTask:
    """Return the schedule one entry of a ``schedule`` label describes; `InvalidScheduleError`."""
    if not isinstance(entry, dict):
        raise InvalidScheduleError(reason=f"expected a dict, got {entry!r}")
    unknown = set(entry) - _KNOWN_KEYS
    if unknown:
        raise InvalidScheduleError(reason=f"unknown keys {sorted(unknown)}")
    when = entry.get("time")
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError:
            raise InvalidScheduleError(reason=f"time {when!r} is not ISO 8601") from None
    if when is not None and not isinstance(when, datetime):
        raise InvalidScheduleError(reason=f"time {when!r} is not a datetime or ISO 8601 string")
    try:
        schedule = ScheduledTask(
            task_name=task_name,
            labels={**task_labels, **(entry.get("labels") or {})},
            args=list(entry.get("args") or []),
            kwargs=dict(entry.get("kwargs") or {}),
            schedule_id=str(entry.get("schedule_id") or f"{task_name}#{index}"),
            cron=entry.get("cron"),
            cron_offset=entry.get("cron_offset"),
            time=when,
            interval=entry.get("interval"),
        )
    except InvalidScheduleError:
        raise
    except (TypeError, ValueError) as exc:
        raise InvalidScheduleError(reason=str(exc)) from None
    check_schedule(schedule)
    return schedule
