"""The randomized model check of schedule sources: adds, deletes, re-adds and claims.

Each round adds schedules of every kind to a few ids (adding an id again replaces it), deletes
some, re-adds deleted ones, lists them, and, with ``persistent``, claims fires of them from
several instances at once. The model is a dictionary of schedules and of the latest claimed fire
of each id: a listing gives exactly the model's schedules, intact; of concurrent claims of one
fire exactly one succeeds when the schedule exists and the fire is later than its latest claimed
one (adding an id again keeps its claims, deleting it forgets them), none otherwise.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from taskq import Capability, ScheduledTask
from taskq_conformance.instances import NewSource
from taskq_conformance.modelcheck import Round, Violation, run_rounds
from taskq_conformance.settings import Settings
from taskq_conformance.suite_schedule_source import same_schedule

#: Steps of a round.
STEPS = 30
#: Schedule ids a round uses.
IDS = 3
#: Instances sharing the store, with ``persistent``.
INSTANCES = 3
#: Step kinds and their weights.
KINDS = {"add": 4, "delete": 2, "list": 3, "claim": 3}
#: The first fire the claims are of.
FIRST_FIRE = datetime(2031, 1, 1, tzinfo=timezone.utc)


class SourceModel:
    """One round against schedule sources sharing a store."""

    def __init__(self, current: Round, sources: list[Any]) -> None:
        self.round, self.sources = current, sources
        declared = {str(getattr(c, "value", c)) for c in sources[0].capabilities}
        self.persistent = Capability.PERSISTENT.value in declared
        tag = uuid.uuid4().hex[:12]
        self.ids = [f"model-{tag}-{n}" for n in range(1, IDS + 1)]
        self.schedules: dict[str, ScheduledTask] = {}
        self.claimed: dict[str, datetime] = {}
        self.counter = 0

    async def run(self) -> None:
        """Run the steps, then delete what the round added."""
        rand = self.round.random
        steps = {"add": self._add, "delete": self._delete, "list": self._list, "claim": self._claim}
        try:
            for _ in range(STEPS):
                kind = rand.choices(list(KINDS), weights=list(KINDS.values()))[0]
                await steps[kind](rand.random(), rand.random(), rand.random())
        finally:
            for schedule_id in self.ids:
                await self.sources[0].delete_schedule(schedule_id)

    def _pick(self, fraction: float) -> tuple[int, Any]:
        n = int(fraction * len(self.sources))
        return n + 1, self.sources[n]

    async def _add(self, a: float, b: float, c: float) -> None:
        schedule_id = self.ids[int(a * IDS)]
        number, source = self._pick(b)
        self.counter += 1
        kind = int(c * 3)
        common: dict[str, Any] = {
            "task_name": "conformance:model",
            "args": [self.counter],
            "labels": {"n": self.counter},
            "schedule_id": schedule_id,
        }
        if kind == 0:
            schedule = ScheduledTask(cron=f"{self.counter % 60} * * * *", **common)
        elif kind == 1:
            schedule = ScheduledTask(time=FIRST_FIRE + timedelta(days=self.counter), **common)
        else:
            schedule = ScheduledTask(interval=10 + self.counter, **common)
        again = "again " if schedule_id in self.schedules else ""
        self.round.log(f"instance {number} adds {self._name(schedule_id)} {again}({self.counter})")
        await source.add_schedule(schedule)
        self.schedules[schedule_id] = schedule

    async def _delete(self, a: float, b: float, c: float) -> None:
        schedule_id = self.ids[int(a * IDS)]
        number, source = self._pick(b)
        self.round.log(f"instance {number} deletes {self._name(schedule_id)}")
        await source.delete_schedule(schedule_id)
        self.schedules.pop(schedule_id, None)
        self.claimed.pop(schedule_id, None)

    async def _list(self, a: float, b: float, c: float) -> None:
        number, source = self._pick(a)
        found = [s for s in await source.get_schedules() if s.schedule_id in self.ids]
        names = sorted(self._name(s.schedule_id) for s in found)
        self.round.log(f"instance {number} lists {', '.join(names) or 'none'}")
        ids = [s.schedule_id for s in found]
        if len(ids) != len(set(ids)):
            raise Violation(f"instance {number} listed an id twice: {names}")
        if set(ids) != set(self.schedules):
            want = sorted(self._name(i) for i in self.schedules)
            raise Violation(f"instance {number} listed {names}, the model has {want}")
        for schedule in found:
            if not same_schedule(schedule, self.schedules[schedule.schedule_id]):
                raise Violation(
                    f"instance {number} listed {self._name(schedule.schedule_id)} as "
                    f"{schedule!r}, not as it was last added"
                )

    async def _claim(self, a: float, b: float, c: float) -> None:
        if not self.persistent:
            return
        schedule_id = self.ids[int(a * IDS)]
        fire = FIRST_FIRE + timedelta(minutes=int(b * 6))
        claims = 2 + int(c * 3)
        rand = self.round.random
        sources = [self._pick(rand.random()) for _ in range(claims)]
        won = await asyncio.gather(*(s.claim_fire(schedule_id, fire) for _, s in sources))
        last = self.claimed.get(schedule_id)
        allowed = schedule_id in self.schedules and (last is None or fire > last)
        what = f"{claims} claims of fire {fire:%H:%M} of {self._name(schedule_id)}"
        self.round.log(f"{what} by instances {[n for n, _ in sources]}: {sum(won)} won")
        if sum(won) != (1 if allowed else 0):
            why = (
                "exactly one"
                if allowed
                else (
                    "none (the schedule does not exist)"
                    if schedule_id not in self.schedules
                    else f"none (fire {last:%H:%M} was claimed already)"
                )
            )
            raise Violation(f"{sum(won)} of {what} succeeded; the model says {why}")
        if allowed:
            self.claimed[schedule_id] = fire

    def _name(self, schedule_id: str) -> str:
        return f"schedule {self.ids.index(schedule_id) + 1}"


@pytest.mark.taskq_requires(Capability.DYNAMIC)
async def test_random_rounds_against_the_model(
    taskq_new_schedule_source: NewSource, taskq_settings: Settings
) -> None:
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(taskq_new_schedule_source())
        sources = [first]
        if Capability.PERSISTENT in first.capabilities:
            for _ in range(INSTANCES - 1):
                sources.append(await stack.enter_async_context(taskq_new_schedule_source()))

        def model(current: Round) -> Coroutine[Any, Any, None]:
            return SourceModel(current, sources).run()

        await run_rounds(taskq_settings, model)
