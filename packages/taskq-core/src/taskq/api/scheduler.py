"""taskiq's ``api.scheduler`` path: `run_scheduler_task`, from taskq-scheduler."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq import _lazy

if TYPE_CHECKING:
    from taskq_scheduler import run_scheduler_task

__all__ = ["run_scheduler_task"]
__getattr__ = _lazy.module_getattr(__name__, tuple(__all__))
