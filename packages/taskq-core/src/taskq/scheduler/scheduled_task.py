"""taskiq's ``scheduler.scheduled_task`` path: `ScheduledTask` and `CronSpec`."""

from taskq.scheduled_task import CronSpec, ScheduledTask

__all__ = ["CronSpec", "ScheduledTask"]
