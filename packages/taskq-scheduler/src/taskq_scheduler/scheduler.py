"""`TaskiqScheduler`: sends the tasks its schedule sources describe, each fire at most once."""

from __future__ import annotations

import asyncio
import inspect
import logging
from datetime import timedelta, tzinfo
from typing import Any

from taskq.abc.broker import AsyncBroker
from taskq.abc.schedule_source import ScheduleSource
from taskq.exceptions import ScheduledTaskCancelledError
from taskq.kicker import send_task
from taskq_scheduler.clock import Clock, SystemClock
from taskq_scheduler.fire import Fire
from taskq_scheduler.loop import SchedulerLoop

logger = logging.getLogger("taskq.scheduler")

#: Seconds between two reads of every source's schedules.
DEFAULT_UPDATE_INTERVAL_S = 60.0


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
        self._failed: set[str] = set()

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
        """Claim ``fire`` from its source and send it; return whether it was sent.

        Nothing raises: a fire another scheduler claimed, one that `pre_send` cancels and
        one the broker fails to send are logged and skipped.
        """
        schedule = fire.schedule
        try:
            if not await fire.source.claim_fire(schedule.schedule_id, fire.instant):
                logger.debug("Fire %s was claimed by another scheduler", fire.idempotency_key)
                return False
            await _settle(fire.source.pre_send(schedule))
            await send_task(
                self.broker,
                schedule.task_name,
                fire.labels,
                tuple(schedule.args),
                schedule.kwargs,
                task_id=fire.task_id,
            )
        except ScheduledTaskCancelledError:
            logger.info("Fire %s was cancelled by its source", fire.idempotency_key)
            return False
        except Exception as exc:
            self._log_failure(fire, exc)
            return False
        logger.info("Sent %s (task %s)", fire.idempotency_key, schedule.task_name)
        try:
            await _settle(fire.source.post_send(schedule))
        except Exception:
            logger.exception("post_send of %s failed", fire.idempotency_key)
        return True

    def _log_failure(self, fire: Fire, error: Exception) -> None:
        schedule_id = fire.schedule.schedule_id
        first = schedule_id not in self._failed
        self._failed.add(schedule_id)
        logger.error(
            "Fire %s of task %s was not sent: %r",
            fire.idempotency_key,
            fire.schedule.task_name,
            error,
            exc_info=error if first else None,
        )


async def _settle(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def _shutdown_quietly(source: ScheduleSource) -> None:
    try:
        await source.shutdown()
    except Exception:
        logger.exception("Shutting down %r failed", source)
