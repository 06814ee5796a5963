"""The task a log record belongs to: set by the receiver while it processes a message.

Log formatters (the worker's ``--log-format json``) read `current_task` to add the task id
and name to every record made while a task runs, the task's own records included.
"""

from __future__ import annotations

from contextvars import ContextVar

#: ``(task_id, task_name)`` of the message being processed in this context, or None.
current_task: ContextVar[tuple[str, str] | None] = ContextVar("taskq_current_task", default=None)
