"""`SchedulerLoop`: every schedule's next fire time in a heap; fires sent as they fall due.

A tick costs the fires that are due, not the number of schedules: the loop sleeps until the
earliest next fire time (or the next read of the sources), pops what is due, computes each
schedule's following fire time from the fire just sent, and sends the fires concurrently.

Rules (documented on the "Scheduler" page):

- Missed fires are not sent late. At start, the latest fire of a cron or interval schedule
  is sent at once if it fell due less than ``START_GRACE_S`` seconds ago, unless
  ``skip_first_run``; with a persistent source a fire already sent before a restart is not
  sent again (its claim fails). A loop that fell behind (a blocked event loop, a suspended
  machine) sends the fire it was waiting for, then skips to the first fire after now.
- A schedule first seen at a later read fires from its first fire time after that read. A
  one-shot ``time`` schedule fires at its time, or at once when that time has passed, and
  only once.
- A schedule the scheduler cannot fire (bad cron expression or timezone, a task its broker
  does not know) is logged once and skipped; the others go on.
- A source that fails to read (its store is down, or holds a key of the wrong type) keeps its
  last read; the failure is logged when it starts, once a minute while it lasts (at once when
  the error changes) and when it ends, and the other sources go on.
- Reading many schedules does not hold up the fires: while the loop plans them, it sends
  what falls due every ``_TICK_EVERY`` schedules.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from dataclasses import dataclass
from datetime import timedelta, timezone, tzinfo
from typing import TYPE_CHECKING

from taskq.abc.schedule_source import ScheduleSource
from taskq.exceptions import InvalidScheduleError
from taskq.scheduled_task import ScheduledTask
from taskq.task_events import MAX_QUOTED_CHARS, quoted, shortened
from taskq_scheduler.fire import Fire
from taskq_scheduler.fire_times import (
    CronPlan,
    FirePlan,
    IntervalPlan,
    OneShotPlan,
    check_cron,
    one_shot_plan,
    parse_zone,
)

if TYPE_CHECKING:
    from taskq_scheduler.scheduler import TaskiqScheduler

logger = logging.getLogger("taskq.scheduler")

#: At start, a periodic schedule's latest fire is still sent if it is at most this old.
START_GRACE_S = 60.0

#: While reading many schedules, the loop sends what fell due after every this many.
_TICK_EVERY = 200

#: A schedule's key in the loop: (index of its source, schedule id).
_Key = tuple[int, str]


@dataclass
class _Tracked:
    source: ScheduleSource
    schedule: ScheduledTask
    plan: FirePlan
    generation: int


class SchedulerLoop:
    """The loop of one `TaskiqScheduler`.

    Args:
        scheduler: Its broker, sources and clock.
        skip_first_run: Do not send, at start, the fires that fell due just before.
        update_interval: Seconds (or a timedelta) between reads of the sources.
        tz: The timezone of cron schedules without a ``cron_offset`` (default UTC): a name
            such as ``"Europe/Paris"``, an offset such as ``"+02:00"``, or a tzinfo.
    """

    def __init__(
        self,
        scheduler: TaskiqScheduler,
        *,
        skip_first_run: bool = False,
        update_interval: float | timedelta = 60.0,
        tz: str | tzinfo | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.clock = scheduler.clock
        self.failures = scheduler.source_failures
        self.skip_first_run = skip_first_run
        self.update_interval = (
            update_interval.total_seconds()
            if isinstance(update_interval, timedelta)
            else float(update_interval)
        )
        if not 0 < self.update_interval < math.inf:  # NaN too
            raise ValueError(
                f"update_interval must be a finite number of seconds greater than 0, "
                f"got {update_interval!r}"
            )
        self.zone = timezone.utc if tz is None else tz if isinstance(tz, tzinfo) else parse_zone(tz)
        self._tracked: dict[_Key, _Tracked] = {}
        self._heap: list[tuple[float, int, _Key]] = []
        self._generation = 0
        self._fired_once: dict[_Key, float] = {}
        self._plans: dict[tuple[object, ...], FirePlan] = {}
        self._reported: dict[_Key, ScheduledTask] = {}

    @property
    def schedules(self) -> int:
        """How many schedules the loop is tracking."""
        return len(self._tracked)

    def next_fire_time(self) -> float | None:
        """The earliest pending fire time (POSIX seconds), or None."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Send fires until ``stop`` is set."""
        stop = stop or asyncio.Event()
        await self.refresh(at_start=True)
        next_read = self.clock.now() + self.update_interval
        while not stop.is_set():
            await self.tick()
            now = self.clock.now()
            if now >= next_read:
                await self.refresh()
                next_read = now + self.update_interval
                continue
            wake = min(next_read, self.next_fire_time() or next_read)
            await self._sleep(wake - now, stop)

    async def refresh(self, *, at_start: bool = False) -> None:
        """Read every source; track new and changed schedules, forget deleted ones."""
        now = self.clock.now()
        for index, source in enumerate(self.scheduler.sources):
            try:
                schedules = await source.get_schedules()
            except Exception as exc:
                reading = f"Reading the schedules of {source!r}"
                self.failures.failed(("read", id(source)), reading, exc, "its last read is kept")
                continue
            self.failures.succeeded(("read", id(source)))
            seen: set[_Key] = set()
            for count, schedule in enumerate(schedules, 1):
                key = (index, schedule.schedule_id)
                seen.add(key)
                tracked = self._tracked.get(key)
                if tracked is not None and tracked.schedule == schedule:
                    pass
                elif tracked is None and self._reported.get(key) == schedule:
                    pass  # known bad: reported once already
                else:
                    self._track(key, source, schedule, now, at_start)
                if count % _TICK_EVERY == 0:
                    await self._tick_if_due()
            for forget in (self._tracked, self._fired_once, self._reported):
                for key in [k for k in forget if k[0] == index and k not in seen]:
                    del forget[key]
        if len(self._heap) > 2 * len(self._tracked) + 64:
            self._rebuild_heap()
        if len(self._plans) > 2 * len(self._tracked) + 64:
            live = {id(tracked.plan) for tracked in self._tracked.values()}
            self._plans = {k: plan for k, plan in self._plans.items() if id(plan) in live}

    async def _tick_if_due(self) -> None:
        """Send what fell due while a long read of the sources is being planned."""
        self._drop_stale()
        if self._heap and self._heap[0][0] <= self.clock.now():
            await self.tick()

    async def tick(self) -> int:
        """Send every fire due now; return how many were sent."""
        fires = self._pop_due(self.clock.now())
        if not fires:
            return 0
        if len(fires) == 1:
            return int(await self.scheduler.send(fires[0]))
        sent = await asyncio.gather(*(self.scheduler.send(fire) for fire in fires))
        return sum(sent)

    def _pop_due(self, now: float) -> list[Fire]:
        fires: list[Fire] = []
        behind = 0
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, generation, key = heapq.heappop(heap)
            tracked = self._tracked.get(key)
            if tracked is None or tracked.generation != generation:
                continue
            fires.append(Fire(tracked.source, tracked.schedule, when))
            following = tracked.plan.next_after(when)
            if following is not None and following <= now:
                behind += 1
                following = tracked.plan.next_after(now)
            if following is None:
                self._fired_once[key] = when
                del self._tracked[key]
            else:
                heapq.heappush(heap, (following, generation, key))
        if behind:
            logger.warning("%d schedule(s) fell behind: their fires until now are skipped", behind)
        return fires

    def _track(
        self, key: _Key, source: ScheduleSource, schedule: ScheduledTask, now: float, start: bool
    ) -> None:
        self._tracked.pop(key, None)
        try:
            plan = self._plan(schedule)
            self._check_task(schedule)
        except InvalidScheduleError as error:
            self._report(key, schedule, error)
            return
        first = self._first_fire(key, plan, now, start and not self.skip_first_run)
        if first is None:
            return
        self._generation += 1
        self._tracked[key] = _Tracked(source, schedule, plan, self._generation)
        heapq.heappush(self._heap, (first, self._generation, key))

    def _first_fire(self, key: _Key, plan: FirePlan, now: float, catch_up: bool) -> float | None:
        if isinstance(plan, OneShotPlan):
            return None if self._fired_once.get(key) == plan.when else plan.when
        if catch_up:
            latest = plan.latest_until(now)
            if latest is not None and now - latest <= START_GRACE_S:
                return latest
        return plan.next_after(now)

    def _plan(self, schedule: ScheduledTask) -> FirePlan:
        if schedule.time is not None:
            return one_shot_plan(schedule.time)
        if schedule.cron is not None:
            offset = schedule.cron_offset
            plan_key: tuple[object, ...] = ("cron", schedule.cron, offset)
            plan = self._plans.get(plan_key)
            if plan is None:
                zone = self.zone if offset is None else parse_zone(offset)
                plan = self._plans[plan_key] = CronPlan(check_cron(schedule.cron), zone)
            return plan
        plan_key = ("interval", schedule.interval_seconds)
        plan = self._plans.get(plan_key)
        if plan is None:
            plan = self._plans[plan_key] = IntervalPlan(schedule.interval_seconds)
        return plan

    def _check_task(self, schedule: ScheduledTask) -> None:
        if self.scheduler.broker.find_task(schedule.task_name) is None:
            raise InvalidScheduleError(
                reason=f"no task is registered under the name {schedule.task_name!r}: give "
                "the scheduler the modules that define the tasks"
            )

    def _report(self, key: _Key, schedule: ScheduledTask, error: InvalidScheduleError) -> None:
        if self._reported.get(key) == schedule:
            return
        self._reported[key] = schedule
        logger.error(
            "Skipping schedule %s of %s: %s",
            shortened(schedule.schedule_id, MAX_QUOTED_CHARS),
            quoted(schedule.task_name),
            shortened(str(error), MAX_QUOTED_CHARS),
        )

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap:
            _, generation, key = heap[0]
            tracked = self._tracked.get(key)
            if tracked is not None and tracked.generation == generation:
                return
            heapq.heappop(heap)

    def _rebuild_heap(self) -> None:
        live = [entry for entry in self._heap if self._is_live(entry)]
        heapq.heapify(live)
        self._heap = live

    def _is_live(self, entry: tuple[float, int, _Key]) -> bool:
        tracked = self._tracked.get(entry[2])
        return tracked is not None and tracked.generation == entry[1]

    async def _sleep(self, seconds: float, stop: asyncio.Event) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        sleeping = asyncio.ensure_future(self.clock.sleep(seconds))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            stopping.cancel()
