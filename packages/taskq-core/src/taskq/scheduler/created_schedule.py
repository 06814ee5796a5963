"""taskiq's ``scheduler.created_schedule`` path: `CreatedSchedule`."""

from taskq.created_schedule import CreatedSchedule

__all__ = ["CreatedSchedule"]
