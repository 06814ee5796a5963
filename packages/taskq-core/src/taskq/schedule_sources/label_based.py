"""taskiq's ``schedule_sources.label_based`` path: `LabelScheduleSource`, from taskq-scheduler."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq import _lazy

if TYPE_CHECKING:
    from taskq_scheduler import LabelScheduleSource

__all__ = ["LabelScheduleSource"]
__getattr__ = _lazy.module_getattr(__name__, tuple(__all__))
