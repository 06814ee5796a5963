"""What a run leaves in the log: its failure, and the line of ``taskq worker --log-tasks``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from taskq.exceptions import TaskCancelledError, TaskExitError, TaskiqError
from taskq.receiver.recording import outcome_kind
from taskq.remote_error import error_text
from taskq.task_events import stored_task_id, stored_task_name

if TYPE_CHECKING:
    from taskq.message import TaskiqMessage
    from taskq.result import TaskiqResult

#: The logger of the per-task lines (INFO), apart from the receiver's own.
task_logger = logging.getLogger("taskq.tasks")
#: The logger of a run's failure (the receiver's).
failure_logger = logging.getLogger("taskq.receiver")


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


def log_failure(message: TaskiqMessage, error: BaseException, level: int) -> None:
    """Log the failure of the run of ``message`` once: at ``level``, with its traceback.

    A cancellation is logged at INFO, and the errors of taskq's own in one line: they say
    what is wrong. The task id and name are as the event store keeps them.
    """
    task_id, task_name = stored_task_id(message.task_id), stored_task_name(message.task_name)
    if isinstance(error, TaskCancelledError):  # asked for: not an error of the task
        failure_logger.info("Task %s (%s) was cancelled while running", task_id, task_name)
    elif isinstance(error, TaskExitError):  # one line, with where the task exited
        failure_logger.log(
            level,
            "Task %s (%s) failed: %s",
            task_id,
            task_name,
            error,
            exc_info=error.__cause__,
        )
    elif isinstance(error, TaskiqError):  # our own errors say what is wrong in one line
        failure_logger.log(level, "Task %s (%s) failed: %s", task_id, task_name, error)
    else:
        failure_logger.log(
            level,
            "Task %s (%s) failed: %s",
            task_id,
            task_name,
            _described(error),
            exc_info=error,
        )


def _described(error: BaseException) -> str:
    """``repr(error)``, or its type and text when its ``__repr__`` raises."""
    try:
        return repr(error)
    except Exception:  # a task's own exception class may be broken
        return f"{type(error).__qualname__}({error_text(error)!r})"
