"""taskq-scheduler: cron, one-shot and interval schedules, each fire sent once.

``RedisScheduleSource`` is imported on first access, so that this package imports without
the ``redis`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskq_scheduler.clock import Clock, ManualClock, SystemClock
from taskq_scheduler.errors import ScheduleKeyTypeError, ScheduleSourceUnavailableError
from taskq_scheduler.fire import Fire
from taskq_scheduler.label_source import LabelScheduleSource
from taskq_scheduler.loop import SchedulerLoop
from taskq_scheduler.memory_source import InMemoryScheduleSource
from taskq_scheduler.run_task import run_scheduler_task
from taskq_scheduler.scheduler import TaskiqScheduler

if TYPE_CHECKING:
    from taskq_scheduler.redis_source import RedisScheduleSource

__all__ = [
    "Clock",
    "Fire",
    "InMemoryScheduleSource",
    "LabelScheduleSource",
    "ManualClock",
    "RedisScheduleSource",
    "ScheduleKeyTypeError",
    "ScheduleSourceUnavailableError",
    "SchedulerLoop",
    "SystemClock",
    "TaskiqScheduler",
    "run_scheduler_task",
]


def __getattr__(name: str) -> Any:
    """Import `RedisScheduleSource` when it is first asked for (it needs the redis extra)."""
    if name == "RedisScheduleSource":
        from taskq_scheduler.redis_source import RedisScheduleSource

        return RedisScheduleSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
