"""The per-task log line of ``taskq worker --log-tasks``: name, id, duration, outcome."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from taskq.receiver.recording import outcome_kind
from taskq.task_events import stored_task_id, stored_task_name

if TYPE_CHECKING:
    from taskq.message import TaskiqMessage
    from taskq.result import TaskiqResult

#: The logger of the per-task lines (INFO), apart from the receiver's own.
task_logger = logging.getLogger("taskq.tasks")


def log_task(message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
    """Log one INFO line for the run of ``message``: its outcome, and the error's type if any.

    The traceback of a failure is not repeated here: the receiver logs it once. The task id
    and name are as the event store keeps them (an id of megabytes is not logged whole).
    """
    error = result.error
    outcome = outcome_kind(error).value
    if error is not None and outcome != "succeeded":
        outcome = f"{outcome} ({type(error).__name__})"
    task_logger.info(
        "%s %s %.3fs %s",
        stored_task_name(message.task_name),
        stored_task_id(message.task_id),
        result.execution_time,
        outcome,
    )
