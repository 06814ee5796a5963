"""`SimpleRetryMiddleware`: sends a failed task again, at once, up to a number of attempts."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from taskq import AsyncKicker
from taskq.abc.broker import AsyncBroker
from taskq.abc.middleware import TaskiqMiddleware
from taskq.control.unique import keep_unique_key
from taskq.exceptions import TaskArgumentsError, TaskCancelledError, TaskRetriedError
from taskq.message import TaskiqMessage
from taskq.result import TaskiqResult
from taskq.task_events import EventKind, quoted, stored_task_id, stored_task_name
from taskq.toolkit import error_line
from taskq_middlewares.errors import NoRetryError

logger = logging.getLogger("taskq.retry")

#: Attempts (the first run included) of a task without a ``max_retries`` label.
DEFAULT_RETRY_COUNT = 3
#: Label counting the runs that failed before this one (absent on the first run).
RETRIES_LABEL = "_retries"
#: Decorator label: the exception types worth a retry for that task.
TYPES_LABEL = "types_of_exceptions"
#: Errors that running again cannot mend, or a run that was stopped on purpose: never retried.
NEVER_RETRIED: tuple[type[BaseException], ...] = (
    NoRetryError,
    TaskArgumentsError,
    TaskCancelledError,
)


class SimpleRetryMiddleware(TaskiqMiddleware):
    """Sends a task that raised again, at once, until it has run ``max_retries`` times.

    ``max_retries`` counts attempts, the first run included, as in the reference: with
    ``max_retries=3`` a task that always fails runs three times and the third error is its
    result. The retry keeps the task id, arguments and labels, and carries the number of
    failed runs so far in the ``_retries`` label. A unique task's key stays held across its
    retries, and is freed when its last run ends.

    A task is retried when its ``retry_on_error`` label (on the decorator or the kicker) is
    true, or, without that label, when ``default_retry_label`` is. Its ``max_retries`` label
    overrides ``default_retry_count``. `NoRetryError`, `TaskArgumentsError` and
    `TaskCancelledError` (a cancelled task) are never retried, nor are errors outside
    ``types_of_exceptions`` when it is given (broker-wide, or per task with the decorator
    label ``types_of_exceptions``).

    Parameters:
        default_retry_count: attempts of a task without a ``max_retries`` label (default 3).
        default_retry_label: retry tasks that have no ``retry_on_error`` label (default False).
        no_result_on_retry: store nothing for a run that is retried, so ``wait_result``
            returns the last attempt's result (default True). Its error becomes a
            `TaskRetriedError`, and its failure is logged once, by this middleware: one
            WARNING line with the error and the retry, no traceback (the last attempt's
            failure is the worker's to log, with its traceback).
        types_of_exceptions: retry only these exception types (default: any).
        max_retries: the same as ``default_retry_count`` (the spelling of the broker docs).
    """

    def __init__(
        self,
        default_retry_count: int = DEFAULT_RETRY_COUNT,
        default_retry_label: bool = False,
        no_result_on_retry: bool = True,
        types_of_exceptions: Iterable[type[BaseException]] | None = None,
        *,
        max_retries: int | None = None,
    ) -> None:
        """Configure the retries (see the class docstring)."""
        super().__init__()
        self.default_retry_count = default_retry_count if max_retries is None else max_retries
        self.default_retry_label = default_retry_label
        self.no_result_on_retry = no_result_on_retry
        self.types_of_exceptions = (
            None if types_of_exceptions is None else tuple(types_of_exceptions)
        )

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        """Drop the ``types_of_exceptions`` label (types do not serialize; workers use the task)."""
        message.labels.pop(TYPES_LABEL, None)
        return message

    async def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        """Send the task again if it may be retried; else let its error be stored."""
        if not self.is_retried(message, exception):
            return
        failed_runs = failed_runs_before(message) + 1
        attempts = int_label(message, "max_retries", self.default_retry_count)
        if failed_runs >= attempts:
            logger.warning(
                "Task %s (%s) failed on its last attempt (%d of %d)",
                stored_task_id(message.task_id),
                stored_task_name(message.task_name),
                failed_runs,
                attempts,
            )
            return
        # timed before the retry is sent: another worker may run it to the end at once, and
        # the task's state is its latest event
        decided_at = time.time()
        try:
            delay = await self.send_again(message, failed_runs)
        except Exception as exc:
            logger.error(
                "Task %s (%s): the retry could not be sent (%s); the error is stored",
                stored_task_id(message.task_id),
                stored_task_name(message.task_name),
                exc,
            )
            return
        logger.warning(
            "Task %s (%s) failed (attempt %d of %d): %s; retrying %s",
            stored_task_id(message.task_id),
            stored_task_name(message.task_name),
            failed_runs,
            attempts,
            error_line(exception),
            f"in {delay:.3f} s" if delay > 0 else "now",
        )
        keep_unique_key(message)  # a unique task's key stays held until its last run ends
        recorder = self.broker.event_recorder
        if recorder is not None:
            recorder.record(
                EventKind.RETRIED,
                message.task_id,
                message.task_name,
                at=decided_at,
                retry=failed_runs,
                retry_delay=delay,
            )
        if self.no_result_on_retry:  # and the worker leaves the failure to the line above
            result.error = TaskRetriedError()

    def is_retried(self, message: TaskiqMessage, exception: BaseException) -> bool:
        """Whether ``exception`` raised by the task of ``message`` calls for another run."""
        if isinstance(exception, NEVER_RETRIED):
            return False
        wanted = self._types_for(message.task_name)
        if wanted is not None and not isinstance(exception, wanted):
            return False
        return bool_label(message, "retry_on_error", self.default_retry_label)

    async def send_again(self, message: TaskiqMessage, failed_runs: int) -> float:
        """Send ``message`` again now, counting ``failed_runs`` in its labels; return 0 (s)."""
        labels = {**message.labels, RETRIES_LABEL: failed_runs}
        await resend(self.broker, message, labels)
        return 0.0

    def _types_for(self, task_name: str) -> tuple[type[BaseException], ...] | None:
        task = self.broker.find_task(task_name)
        per_task = None if task is None else task.labels.get(TYPES_LABEL)
        if per_task is not None:
            return tuple(per_task)
        return self.types_of_exceptions


async def resend(broker: AsyncBroker, message: TaskiqMessage, labels: dict[str, Any]) -> None:
    """Send the task of ``message`` again through ``broker`` under its task id, with ``labels``."""
    kicker: AsyncKicker[Any, Any] = AsyncKicker(message.task_name, broker, labels)
    await kicker.with_task_id(message.task_id).kiq(*message.args, **message.kwargs)


def int_label(message: TaskiqMessage, name: str, default: int) -> int:
    """The label ``name`` as an int (labels may arrive as strings), ``default`` if absent."""
    raw = message.labels.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except (TypeError, ValueError, OverflowError):  # OverflowError: infinity
        logger.warning(
            "Task %s: label %s=%s is not an integer; using %d",
            stored_task_id(message.task_id),
            name,
            quoted(raw),
            default,
        )
        return default


def failed_runs_before(message: TaskiqMessage) -> int:
    """The failed runs before this one (the ``_retries`` label); 0 if absent or unreadable.

    A negative count (a label set by hand) is taken as 0: it would add that many attempts.
    """
    count = int_label(message, RETRIES_LABEL, 0)
    if count < 0:
        logger.warning(
            "Task %s: label %s=%d is negative; counting no failed runs",
            stored_task_id(message.task_id),
            RETRIES_LABEL,
            count,
        )
        return 0
    return count


def bool_label(message: TaskiqMessage, name: str, default: bool) -> bool:
    """The label ``name`` as a bool (``"true"``/``"false"`` strings too), ``default`` if absent."""
    raw = message.labels.get(name)
    if raw is None:
        return default
    if isinstance(raw, str):
        return raw.strip().lower() in ("true", "1", "yes")
    return bool(raw)
