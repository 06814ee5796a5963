"""`SmartRetryMiddleware`: retries after a delay that grows exponentially, with full jitter."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from taskq.abc.schedule_source import ScheduleSource
from taskq.capabilities import Capability
from taskq.labels import MAX_DELAY_S
from taskq.message import TaskiqMessage
from taskq.scheduled_task import ScheduledTask
from taskq.task_events import quoted, stored_task_id
from taskq_middlewares.errors import RetryConfigurationError
from taskq_middlewares.simple_retry import (
    DEFAULT_RETRY_COUNT,
    RETRIES_LABEL,
    SimpleRetryMiddleware,
    resend,
)

logger = logging.getLogger("taskq.retry")

#: Seconds before the first retry of a task without a ``delay`` label.
DEFAULT_DELAY_S = 5.0
#: Most seconds an exponential backoff grows to.
DEFAULT_MAX_DELAY_S = 60.0
#: Label keeping a task's base delay across retries (its ``delay`` label is the broker's).
BASE_DELAY_LABEL = "_retry_delay"
#: Doublings beyond which the backoff is the cap anyway (keeps 2**n a finite float).
_MAX_DOUBLINGS = 1000
#: The longest wait before a retry, in seconds: the longest ``delay`` a message may carry
#: (30 days). A longer one could not be sent with a ``delay`` label, and a schedule that far
#: off overflows ``datetime`` or lands in year 9949.
MAX_RETRY_DELAY_S = float(MAX_DELAY_S)


class SmartRetryMiddleware(SimpleRetryMiddleware):
    """Retries like `SimpleRetryMiddleware`, but each retry waits first.

    After the n-th failed run (n = 1, 2, ...) the retry waits ``delay`` seconds — the task's
    ``delay`` label, else ``default_delay`` —, or with ``use_delay_exponent``
    ``delay * 2**(n - 1)`` capped at ``max_delay_exponent`` seconds (1, 2, 4, 8, ... for a
    delay of 1). No wait exceeds `MAX_RETRY_DELAY_S` (30 days), whatever the labels and
    ``max_delay_exponent`` say. With ``use_jitter`` the wait is drawn uniformly from [0, that
    wait] ("full jitter"), so workers that failed together do not retry together.

    The wait is carried by the ``delay`` label when the broker declares the ``delay``
    capability, else by a one-shot schedule added to ``schedule_source`` (a dynamic source a
    scheduler reads). With neither, `startup` raises `RetryConfigurationError` rather than
    retrying at once.

    Parameters:
        default_retry_count: attempts of a task without a ``max_retries`` label, the first
            run included (default 3).
        default_retry_label: retry tasks that have no ``retry_on_error`` label (default False).
        no_result_on_retry: store nothing for a run that is retried (default True), and log
            its failure in the retry's one line (see `SimpleRetryMiddleware`).
        default_delay: seconds before a retry of a task without a ``delay`` label (default 5,
            at most 30 days).
        use_jitter: wait a uniform random time in [0, backoff] instead (default False).
        use_delay_exponent: double the wait after each failed run (default False).
        max_delay_exponent: cap of the exponential backoff, in seconds (default 60; above
            30 days, or infinite, the cap is 30 days).
        schedule_source: where to add the retries when the broker has no ``delay``.
        types_of_exceptions: retry only these exception types (default: any).
    """

    def __init__(
        self,
        default_retry_count: int = DEFAULT_RETRY_COUNT,
        default_retry_label: bool = False,
        no_result_on_retry: bool = True,
        default_delay: float = DEFAULT_DELAY_S,
        use_jitter: bool = False,
        use_delay_exponent: bool = False,
        max_delay_exponent: float = DEFAULT_MAX_DELAY_S,
        schedule_source: ScheduleSource | None = None,
        types_of_exceptions: Iterable[type[BaseException]] | None = None,
    ) -> None:
        """Configure the retries and their delays (see the class docstring)."""
        super().__init__(
            default_retry_count, default_retry_label, no_result_on_retry, types_of_exceptions
        )
        if schedule_source is not None and not isinstance(schedule_source, ScheduleSource):
            raise TypeError(f"schedule_source must be a ScheduleSource, not {schedule_source!r}")
        if not (0 <= default_delay <= MAX_RETRY_DELAY_S and max_delay_exponent >= 0):  # NaN too
            raise ValueError(
                "default_delay must be finite seconds, at most 30 days, and max_delay_exponent "
                "seconds, neither negative nor NaN; "
                f"got {default_delay!r} and {max_delay_exponent!r}"
            )
        self.default_delay = default_delay
        self.use_jitter = use_jitter
        self.use_delay_exponent = use_delay_exponent
        self.max_delay_exponent = max_delay_exponent
        self.schedule_source = schedule_source

    def startup(self) -> None:
        """Check that retries can be delayed: by the broker, or through a dynamic source."""
        if Capability.DELAY in self.broker.capabilities:
            return
        broker = type(self.broker).__name__
        if self.schedule_source is None:
            raise RetryConfigurationError(
                f"SmartRetryMiddleware cannot delay retries: {broker} does not support the "
                "'delay' label; pass schedule_source= (a dynamic schedule source a scheduler "
                "reads) or use a broker with the 'delay' capability"
            )
        if Capability.DYNAMIC not in self.schedule_source.capabilities:
            raise RetryConfigurationError(
                f"SmartRetryMiddleware cannot delay retries: {broker} does not support the "
                f"'delay' label and {type(self.schedule_source).__name__} cannot add "
                "schedules at runtime (it lacks the 'dynamic' capability)"
            )

    def base_delay(self, message: TaskiqMessage) -> float:
        """The task's base delay in seconds: its ``delay`` label when first sent, or the default."""
        raw = message.labels.get(BASE_DELAY_LABEL, message.labels.get("delay"))
        if raw is None:
            return self.default_delay
        try:
            delay = float(raw)
        except (TypeError, ValueError, OverflowError):
            delay = math.nan
        if math.isfinite(delay):
            if delay <= MAX_RETRY_DELAY_S:
                return max(delay, 0.0)
            logger.warning(
                "Task %s: delay %s is over 30 days; retrying after 30 days at most",
                stored_task_id(message.task_id),
                quoted(raw),
            )
            return MAX_RETRY_DELAY_S
        logger.warning(
            "Task %s: delay %s is not a finite number of seconds; using %s",
            stored_task_id(message.task_id),
            quoted(raw),
            self.default_delay,
        )
        return self.default_delay

    def retry_delay(self, message: TaskiqMessage, failed_runs: int) -> float:
        """Seconds to wait before the run after ``failed_runs`` failed ones (30 days at most)."""
        base = wait = self.base_delay(message)
        if self.use_delay_exponent:
            cap = min(self.max_delay_exponent, MAX_RETRY_DELAY_S)
            wait = min(base * 2.0 ** min(failed_runs - 1, _MAX_DOUBLINGS), cap)
        if self.use_jitter:
            wait = random.uniform(0.0, wait)
        return wait

    async def send_again(self, message: TaskiqMessage, failed_runs: int) -> float:
        """Send ``message`` again after its backoff (by ``delay`` label or schedule source).

        Returns the backoff in seconds.
        """
        wait = self.retry_delay(message, failed_runs)
        base = self.base_delay(message)
        labels = {**message.labels, RETRIES_LABEL: failed_runs, BASE_DELAY_LABEL: base}
        if Capability.DELAY in self.broker.capabilities:
            await resend(self.broker, message, {**labels, "delay": wait})
            return wait
        if self.schedule_source is None:  # startup refuses this configuration
            raise RetryConfigurationError("no way to delay the retry: see SmartRetryMiddleware")
        labels.pop("delay", None)
        await self.schedule_source.add_schedule(
            ScheduledTask(
                task_name=message.task_name,
                labels=labels,
                args=list(message.args),
                kwargs=dict(message.kwargs),
                task_id=message.task_id,
                schedule_id=retry_schedule_id(message.task_id, failed_runs),
                time=datetime.now(timezone.utc) + timedelta(seconds=wait),
            )
        )
        return wait


def retry_schedule_id(task_id: str, failed_runs: int) -> str:
    """The id of the one-shot schedule of a task's retry after ``failed_runs`` failed runs.

    ``retry-<task id>-<n>``, the id as the event stores keep it (`stored_task_id`): one per
    task and retry, and bounded (a schedule source keeps it as a key, the scheduler sends it
    in the retry's labels twice; a 5 MB task id made each 5 MB).
    """
    return f"retry-{stored_task_id(task_id)}-{failed_runs}"
