"""Run a worker or a scheduler programmatically, inside your own event loop.

`run_receiver_task` is core's; ``run_scheduler_task`` comes from taskq-scheduler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq import _lazy
from taskq.api.receiver import run_receiver_task

if TYPE_CHECKING:
    from taskq_scheduler import run_scheduler_task

__all__ = ["run_receiver_task", "run_scheduler_task"]
__getattr__ = _lazy.module_getattr(__name__, ("run_scheduler_task",))
