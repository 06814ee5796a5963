"""`TaskiqScheduler`: sends the tasks its schedule sources describe, each fire at most once."""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta, tzinfo

from taskq.abc.broker import AsyncBroker
from taskq.abc.schedule_source import ScheduleSource
from taskq.exceptions import ScheduledTaskCancelledError
from taskq.scheduled_task import ScheduledTask
from taskq.task_events import MAX_QUOTED_CHARS, shortened, stored_task_name
from taskq.toolkit import error_line, maybe_await, send_task
from taskq_scheduler.clock import Clock, SystemClock
from taskq_scheduler.errors import ScheduleKeyTypeError
from taskq_scheduler.failures import REPORT_INTERVAL_S, FailureLog
from taskq_scheduler.fire import Fire
from taskq_scheduler.loop import SchedulerLoop

logger = logging.getLogger("taskq.scheduler")

#: Seconds between two reads of every source's schedules.
DEFAULT_UPDATE_INTERVAL_S = 60.0
#: Seconds between two error lines about one schedule whose fires keep failing to be sent.
FAILURE_REPORT_INTERVAL_S = REPORT_INTERVAL_S


class TaskiqScheduler:
    """Sends tasks on the schedules of ``sources`` through ``broker``.

    `startup` starts the sources and the broker, `run` sends each fire as it falls due
    (see `SchedulerLoop` for the rules), `shutdown` stops them. ``taskq scheduler
    pkg.mod:scheduler`` does all three.

    Args:
        broker: The broker the tasks are sent through.
        sources: Where the schedules come from.
        clock: The time source (default: the system clock); tests give a `ManualClock`.
    """

    def __init__(
        self,
        broker: AsyncBroker,
        sources: list[ScheduleSource],
        *,
        clock: Clock | None = None,
    ) -> None:
        self.broker = broker
        self.sources = list(sources)
        self.clock: Clock = clock or SystemClock()
        self._failing: dict[str, _Failing] = {}  # by schedule id
        #: The runs of failed reads and claims of each source.
        self.source_failures = FailureLog(self.clock, logger)

    async def startup(self) -> None:
        """Start every source, then the broker; what started is stopped again on a failure."""
        started: list[ScheduleSource] = []
        try:
            for source in self.sources:
                await source.startup()
                started.append(source)
            await self.broker.startup()
        except BaseException:
            for source in reversed(started):
                await _shutdown_quietly(source)
            raise

    async def shutdown(self) -> None:
        """Stop the broker, then every source (a failing one is logged, the others go on)."""
        try:
            await self.broker.shutdown()
        finally:
            for source in reversed(self.sources):
                await _shutdown_quietly(source)

    async def run(
        self,
        stop: asyncio.Event | None = None,
        *,
        skip_first_run: bool = False,
        update_interval: float | timedelta = DEFAULT_UPDATE_INTERVAL_S,
        tz: str | tzinfo | None = None,
    ) -> None:
        """Send fires until ``stop`` is set (forever without one); see `SchedulerLoop`."""
        loop = SchedulerLoop(
            self, skip_first_run=skip_first_run, update_interval=update_interval, tz=tz
        )
        await loop.run(stop)

    async def send(self, fire: Fire) -> bool:
        """Claim ``fire`` from its source, send it with `on_ready`; return whether it was sent.

        Nothing raises: a fire another scheduler claimed, one that `pre_send` cancels and
        one the broker fails to send are logged and skipped.
        """
        sending = _Sending(fire)
        token = _sending.set(sending)
        try:
            if not await self._claim(fire):
                logger.debug("Fire %s was claimed by another scheduler", fire.name)
                return False
            await self.on_ready(fire.source, fire.schedule)
        except ScheduleKeyTypeError as exc:
            # the source's store, not this schedule: one run of lines for all its schedules
            claiming = f"Claiming the fires of {fire.source!r}"
            key = ("claim", id(fire.source))
            kind = (exc.key, exc.found)  # the message names the schedule: not a change
            self.source_failures.failed(key, claiming, exc, "its fires are not sent", kind)
            return False
        except Exception as exc:
            self._log_failure(fire, exc)
            return False
        finally:
            _sending.reset(token)
        if sending.sent:
            self._log_recovery(fire)
        return sending.sent

    async def _claim(self, fire: Fire) -> bool:
        """Claim ``fire`` from its source; a claim that answers ends a run of failed claims."""
        claimed = await fire.source.claim_fire(fire.schedule.schedule_id, fire.instant)
        self.source_failures.succeeded(("claim", id(fire.source)))
        return claimed

    async def on_ready(self, source: ScheduleSource, task: ScheduledTask) -> None:
        """Send ``task``, a schedule of ``source``, now: the loop calls it for each due fire.

        It runs ``source.pre_send(task)`` (a `ScheduledTaskCancelledError` there cancels this
        fire: logged, not raised), sends the task with the schedule's arguments, its labels
        plus ``schedule_id``, ``fire_time`` and ``idempotency_key``, and the schedule's task
        id (or one derived from the idempotency key), then runs ``source.post_send(task)``
        (a failure there is logged). A broker failure raises.

        Override it to change how fires are sent (add labels, log, skip some), and call
        ``super().on_ready(source, task)`` to send; ``task`` may be a changed copy of the
        schedule (``task.model_copy(update=...)``). Called directly, outside the loop, it
        sends a fire at the current time (without claiming it).
        """
        sending = _sending.get()
        if sending is not None and sending.fire.schedule.schedule_id == task.schedule_id:
            fire = Fire(source, task, sending.fire.time)
        else:
            sending, fire = None, Fire(source, task, self.clock.now())
        try:
            await maybe_await(source.pre_send(task))
        except ScheduledTaskCancelledError:
            logger.info("Fire %s was cancelled by its source", fire.name)
            return
        await send_task(
            self.broker,
            task.task_name,
            fire.labels,
            tuple(task.args),
            dict(task.kwargs),  # the message's own: the schedule keeps its dict
            task_id=fire.task_id,
        )
        if sending is not None:
            sending.sent = True
        logger.info("Sent %s (task %s)", fire.name, stored_task_name(task.task_name))
        try:
            await maybe_await(source.post_send(task))
        except Exception:
            logger.exception("post_send of %s failed", fire.name)

    def _log_failure(self, fire: Fire, error: Exception) -> None:
        """Log an unsent fire: the first of a run of failures with its traceback.

        Then one line per `FAILURE_REPORT_INTERVAL_S`, with the count: an every-second
        schedule during an outage would log a line a second.
        """
        failing = self._failing.setdefault(fire.schedule.schedule_id, _Failing())
        failing.unsent += 1
        now = self.clock.now()
        if failing.unsent > 1 and now - failing.reported_at < FAILURE_REPORT_INTERVAL_S:
            return
        failing.reported_at = now
        logger.error(
            "Fire %s of task %s was not sent: %s%s",
            fire.name,
            stored_task_name(fire.schedule.task_name),
            shortened(error_line(error), MAX_QUOTED_CHARS),
            f" ({failing.unsent} fires of this schedule not sent in a row)"
            if failing.unsent > 1
            else "",
            exc_info=error if failing.unsent == 1 else None,
        )

    def _log_recovery(self, fire: Fire) -> None:
        """Say that a schedule whose fires failed sends again, and how many were not sent."""
        failing = self._failing.pop(fire.schedule.schedule_id, None)
        if failing is not None:
            logger.warning(
                "Schedule %s sends again (%s): %d fire(s) before it were not sent",
                shortened(fire.schedule.schedule_id, MAX_QUOTED_CHARS),
                fire.name,
                failing.unsent,
            )


@dataclass
class _Failing:
    """A schedule whose last fires were not sent: how many, and when that was last logged."""

    unsent: int = 0
    reported_at: float = 0.0


@dataclass
class _Sending:
    """The fire `TaskiqScheduler.send` is sending, and whether `on_ready` sent it."""

    fire: Fire
    sent: bool = False


#: Set by `TaskiqScheduler.send` while `on_ready` runs, so that it sends the loop's fire.
_sending: ContextVar[_Sending | None] = ContextVar("taskq_scheduler_sending", default=None)


async def _shutdown_quietly(source: ScheduleSource) -> None:
    try:
        await source.shutdown()
    except Exception:
        logger.exception("Shutting down %r failed", source)
