"""The randomized model check of result backends: writers, readers and waiters against a dict.

Each round writes results (successes and errors, overwriting some) to a few task ids, through
one instance or, with ``cross_process``, several sharing a store; reads them back, concurrently
with writes to other ids; sets and reads progress (``progress``); waits for ids not written yet
with short timeouts; and, with ``ttl``, gives some rounds a one-second ``result_ttl``. Every
answer is checked against a dictionary: a read gives the latest write (an error as its type and
message), an id never written is not ready and reading it raises a `TaskiqError`, a waiter
returns True when its id was written before its timeout and within the timing tolerance of it,
progress reads give the latest report, and with a TTL a result is there before it and gone
after it (give or take the tolerance).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from taskq import Capability, TaskiqError, TaskiqResult, TaskProgress, TaskState
from taskq_conformance.instances import NewBackend
from taskq_conformance.modelcheck import Round, Violation, run_rounds
from taskq_conformance.settings import Settings
from taskq_conformance.suite_result_backend import new_id

#: Steps of a round.
STEPS = 30
#: Task ids a round uses.
IDS = 4
#: Instances sharing the store, with ``cross_process``.
INSTANCES = 2
#: Step kinds and their weights.
KINDS = {"write": 4, "read": 4, "progress": 2, "wait": 2, "pause": 1}
#: Seconds of the TTL of the rounds that set one.
TTL = 1


@dataclass
class Written:
    """The latest write of an id: what, and between which moments it was made."""

    value: Any
    is_err: bool
    started: float
    done: float


@dataclass(eq=False)
class Waiter:
    """A ``wait_ready`` in flight."""

    task_id: str
    timeout: float
    started: float
    job: asyncio.Task[tuple[bool, float]]


class BackendModel:
    """One round against result backends sharing a store."""

    def __init__(self, current: Round, backends: list[Any], settings: Settings) -> None:
        self.round, self.backends, self.tolerance = current, backends, settings.tolerance
        declared = {str(getattr(c, "value", c)) for c in backends[0].capabilities}
        self.progress_declared = Capability.PROGRESS.value in declared
        self.ttl: float | None = None
        if Capability.TTL.value in declared and current.random.random() < 0.5:
            self.ttl = TTL
        self.ids = [new_id() for _ in range(IDS)]
        self.written: dict[str, Written] = {}
        #: when the first write of each id began: a waiter may see it before that write returns
        self.first_write: dict[str, float] = {}
        self.progress: dict[str, Any] = {}
        self.waiters: list[Waiter] = []
        self.counter = 0

    async def run(self) -> None:
        """Set the TTL, run the steps, collect the waiters; restore the TTL."""
        rand = self.round.random
        steps = {
            "write": self._write,
            "read": self._read_all,
            "progress": self._progress,
            "wait": self._wait,
            "pause": self._pause,
        }
        before = [getattr(b, "result_ttl", None) for b in self.backends]
        if self.ttl is not None:
            self.round.log(f"result_ttl = {self.ttl} s")
            for backend in self.backends:
                backend.result_ttl = self.ttl
        try:
            for _ in range(STEPS):
                kind = rand.choices(list(KINDS), weights=list(KINDS.values()))[0]
                await steps[kind](rand.random(), rand.random())
                self._check_waiters(finished_only=True)
            await asyncio.gather(*(w.job for w in self.waiters), return_exceptions=True)
            self._check_waiters(finished_only=False)
        finally:
            for waiter in self.waiters:
                waiter.job.cancel()
            if self.ttl is not None:
                for backend, ttl in zip(self.backends, before, strict=True):
                    backend.result_ttl = ttl

    def _pick(self, fraction: float) -> tuple[int, Any]:
        n = int(fraction * len(self.backends))
        return n + 1, self.backends[n]

    async def _write(self, a: float, b: float) -> None:
        rand = self.round.random
        ids = rand.sample(self.ids, 1 + int(a * 3))
        others = [i for i in self.ids if i not in ids]
        jobs = [self._write_one(i, rand.random(), rand.random()) for i in ids]
        jobs += [self._read_one(i, rand.random()) for i in rand.sample(others, min(2, len(others)))]
        await asyncio.gather(*jobs)

    async def _write_one(self, task_id: str, a: float, b: float) -> None:
        self.counter += 1
        is_err = a < 0.2
        value = f"error {self.counter}" if is_err else {"n": self.counter}
        number, backend = self._pick(b)
        result: TaskiqResult[Any] = TaskiqResult(
            is_err=is_err,
            return_value=None if is_err else value,
            execution_time=0.1,
            error=ValueError(value) if is_err else None,
        )
        self.round.log(f"instance {number} writes {value!r} to {self._name(task_id)}")
        started = time.monotonic()
        self.first_write.setdefault(task_id, started)
        await backend.set_result(task_id, result)
        self.written[task_id] = Written(value, is_err, started, time.monotonic())

    async def _read_all(self, a: float, b: float) -> None:
        rand = self.round.random
        await asyncio.gather(*(self._read_one(i, rand.random()) for i in self.ids))

    async def _read_one(self, task_id: str, fraction: float) -> None:
        number, backend = self._pick(fraction)
        name = f"instance {number} reading {self._name(task_id)}"
        started = time.monotonic()
        ready = await backend.is_result_ready(task_id)
        written = self.written.get(task_id)
        must = self._must_be_there(written, started)
        if must is not None and ready != must:
            raise Violation(f"{name}: is_result_ready() said {ready}, the model {must}")
        if not ready:
            if written is None:
                try:
                    await backend.get_result(task_id)
                except TaskiqError:
                    return
                raise Violation(
                    f"{name}: get_result() of an id never written raised no TaskiqError"
                )
            return
        if written is None:
            raise Violation(f"{name}: an id never written is ready")
        result = await backend.get_result(task_id)
        if written.done > started:  # a write overlapped the read: either answer will do
            return
        got = str(result.error) if result.is_err else result.return_value
        if result.is_err != written.is_err or got != written.value:
            raise Violation(
                f"{name}: got {'error ' if result.is_err else ''}{got!r}, but the latest write "
                f"was {written.value!r}"
            )
        self.round.log(f"{name}: {got!r}")

    def _must_be_there(self, written: Written | None, at: float) -> bool | None:
        """Whether a result must be ready at ``at`` (None: either, near its expiry)."""
        if written is None:
            return False
        if self.ttl is None:
            return True
        if time.monotonic() < written.started + self.ttl - self.tolerance:
            return True
        if at > written.done + self.ttl + self.tolerance:
            return False
        return None

    async def _progress(self, a: float, b: float) -> None:
        if not self.progress_declared:
            return
        task_id = self.ids[int(a * IDS)]
        number, backend = self._pick(b)
        self.counter += 1
        meta = {"done": self.counter}
        self.round.log(f"instance {number} reports progress {meta} of {self._name(task_id)}")
        await backend.set_progress(task_id, TaskProgress(TaskState.STARTED, meta))
        self.progress[task_id] = meta
        if self.ttl is not None:
            return
        for other in self.ids:
            if other in self.written:
                continue  # what a result does to progress is the backend's choice
            got = await backend.get_progress(other)
            want = self.progress.get(other)
            if (got.meta if got is not None else None) != want:
                shown = got.meta if got is not None else None
                raise Violation(
                    f"get_progress() of {self._name(other)} gave {shown!r}, the latest "
                    f"report was {want!r}"
                )

    async def _wait(self, a: float, b: float) -> None:
        unwritten = [i for i in self.ids if i not in self.written]
        if not unwritten:
            return
        task_id = unwritten[int(a * len(unwritten))]
        timeout = (0.3, 1.0, 2.0)[int(b * 3)]
        number, backend = self._pick(a)
        started = time.monotonic()

        async def wait() -> tuple[bool, float]:
            ready = await backend.wait_ready(task_id, timeout, 0.05)
            return bool(ready), time.monotonic()

        job = asyncio.ensure_future(wait())
        self.waiters.append(Waiter(task_id, timeout, started, job))
        self.round.log(f"instance {number} waits {timeout} s for {self._name(task_id)}")

    async def _pause(self, a: float, b: float) -> None:
        seconds = (0.05, 0.3, 1.1)[int(a * 3)]
        self.round.log(f"pause {seconds} s")
        await asyncio.sleep(seconds)

    def _check_waiters(self, finished_only: bool) -> None:
        for waiter in list(self.waiters):
            if finished_only and not waiter.job.done():
                continue
            self.waiters.remove(waiter)
            self._check_waiter(waiter)

    def _check_waiter(self, waiter: Waiter) -> None:
        ready, ended = waiter.job.result()
        deadline = waiter.started + waiter.timeout
        name = f"a {waiter.timeout} s wait for {self._name(waiter.task_id)}"
        if ended > deadline + self.tolerance:
            raise Violation(f"{name} returned {ended - waiter.started:.2f} s after it started")
        written = self.written.get(waiter.task_id)
        if not ready and ended < deadline - 0.05:
            raise Violation(f"{name} gave up after {ended - waiter.started:.2f} s")
        first_write = self.first_write.get(waiter.task_id)
        if ready and (first_write is None or first_write > ended):
            raise Violation(f"{name} returned True before anything was written")
        if not ready and written is not None and written.done < deadline - self.tolerance:
            raise Violation(f"{name} returned False though the result was written in time")
        self.round.log(f"{name} returned {ready} after {ended - waiter.started:.2f} s")

    def _name(self, task_id: str) -> str:
        return f"id {self.ids.index(task_id) + 1}"


async def test_random_rounds_against_the_model(
    taskq_new_result_backend: NewBackend, taskq_settings: Settings
) -> None:
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(taskq_new_result_backend())
        backends = [first]
        if Capability.CROSS_PROCESS in first.capabilities:
            for _ in range(INSTANCES - 1):
                backends.append(await stack.enter_async_context(taskq_new_result_backend()))

        def model(current: Round) -> Coroutine[Any, Any, None]:
            return BackendModel(current, backends, taskq_settings).run()

        await run_rounds(taskq_settings, model)
