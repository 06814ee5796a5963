"""The Schedules page's data: every schedule of every source of the scheduler, next fire first.

Next fires come from the scheduler's own fire plans (the ``scheduler`` extra), so the page
shows what the scheduler will do.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from taskq.capabilities import Capability
from taskq.exceptions import TaskiqError
from taskq_dashboard.views import plain

if TYPE_CHECKING:
    from taskq.abc.schedule_source import ScheduleSource
    from taskq.scheduled_task import ScheduledTask
    from taskq_dashboard.state import DashboardState


async def schedules(state: DashboardState) -> dict[str, Any]:
    """Each source (its index, class, whether it is dynamic) and its schedules."""
    if state.scheduler is None:
        return {"available": False, "sources": [], "tasks": []}
    now = time.time()
    sources = []
    for index, source in enumerate(state.scheduler.sources):
        try:
            found = await source.get_schedules()
            error = None
        except TaskiqError as failure:
            found, error = [], str(failure)
        sources.append(
            {
                "index": index,
                "source": type(source).__name__,
                "dynamic": is_dynamic(source),
                "error": error,
                "schedules": [schedule_data(schedule, now) for schedule in found],
            }
        )
    return {"available": True, "sources": sources, "tasks": sorted(state.broker.get_all_tasks())}


def is_dynamic(source: ScheduleSource) -> bool:
    """Whether schedules can be added to and deleted from ``source`` at run time."""
    return Capability.DYNAMIC in source.capabilities


def schedule_data(schedule: ScheduledTask, now: float) -> dict[str, Any]:
    """One schedule as JSON-ready data, with its kind, timezone and next fire (Unix s)."""
    if schedule.cron is not None:
        kind, spec = "cron", schedule.cron
    elif schedule.time is not None:
        kind, spec = "time", schedule.time.isoformat()
    else:
        kind, spec = "interval", f"{schedule.interval_seconds:g} s"
    offset = schedule.cron_offset
    return {
        "schedule_id": schedule.schedule_id,
        "task_name": schedule.task_name,
        "kind": kind,
        "spec": spec,
        "timezone": _zone_text(offset) if offset is not None else "UTC",
        "next_fire": next_fire(schedule, now),
        "args": plain(schedule.args),
        "kwargs": plain(schedule.kwargs),
        "labels": plain(schedule.labels),
    }


def next_fire(schedule: ScheduledTask, now: float) -> float | None:
    """When ``schedule`` fires next after ``now`` (Unix s); None when never or not computable."""
    try:
        from taskq_scheduler.fire_times import plan_for
    except ImportError:  # the scheduler extra is not installed: the page shows no next fire
        return None
    try:
        return plan_for(schedule).next_after(now)
    except TaskiqError:
        return None


def _zone_text(offset: str | timedelta) -> str:
    if isinstance(offset, timedelta):
        minutes = int(offset.total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return offset
