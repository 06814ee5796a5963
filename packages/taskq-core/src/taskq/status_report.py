"""A running system at a glance: workers, queue depths, throughput and the last failures.

`collect_status` reads an event store and, where the broker declares ``inspect``, the broker's
queue; `StatusReport.as_dict` is what ``taskq status --json`` prints.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskq.capabilities import Capability
from taskq.exceptions import TaskiqError
from taskq.task_events import EventKind, MinuteRate, TaskEvent, WorkerStatus

if TYPE_CHECKING:
    from taskq.abc.event_store import AsyncEventStore
    from taskq.broker import AsyncBroker
    from taskq.inspection import QueueInspection

#: The windows (minutes) throughput and failure rate are given over.
WINDOWS = (1, 5, 15)
#: Seconds after its last heartbeat a worker counts as stale, by default.
DEFAULT_STALE_AFTER_S = 30.0
#: Failures a report lists, by default.
DEFAULT_FAILURES = 10


@dataclass(frozen=True)
class Throughput:
    """Tasks finished over the last ``minutes`` minutes (and the current one so far).

    ``per_minute`` counts succeeded and failed tasks; ``failure_rate`` is failed over
    finished (None when none finished).
    """

    minutes: int
    succeeded: int
    failed: int
    per_minute: float
    failure_rate: float | None


@dataclass(frozen=True)
class StatusReport:
    """What ``taskq status`` shows; ``queue`` is None when ``queue_note`` says why."""

    time: float
    broker: str
    workers: list[WorkerStatus]
    queue: QueueInspection | None
    queue_note: str | None
    throughput: list[Throughput]
    failures: list[TaskEvent]

    @property
    def alive(self) -> int:
        """The number of workers whose heartbeat is recent."""
        return sum(worker.alive for worker in self.workers)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "time": self.time,
            "broker": self.broker,
            "alive": self.alive,
            "workers": [
                {
                    **status.heartbeat.as_dict(),
                    "alive": status.alive,
                    "clock_ahead": status.clock_ahead,
                }
                for status in self.workers
            ],
            "queue": None if self.queue is None else dataclasses.asdict(self.queue),
            "queue_note": self.queue_note,
            "throughput": [dataclasses.asdict(window) for window in self.throughput],
            "failures": [event.as_dict() for event in self.failures],
        }


async def collect_status(
    store: AsyncEventStore,
    broker: AsyncBroker | None,
    *,
    stale_after: float = DEFAULT_STALE_AFTER_S,
    failures: int = DEFAULT_FAILURES,
    now: float | None = None,
) -> StatusReport:
    """Read the store (and the broker's queue, if it declares ``inspect``) into a report.

    The broker's queue is read while the store is: a broker and a store on a server each
    wait for their own round trips (and connections), not one after the other's.
    """
    moment = time.time() if now is None else now
    inspecting = asyncio.ensure_future(_inspect(broker))
    try:
        rates = await store.rates(max(WINDOWS) + 1, now=moment)
        workers = await store.workers(stale_after, now=moment)
        latest = await store.failures(failures) if failures else []
    except BaseException:
        inspecting.cancel()
        await asyncio.gather(inspecting, return_exceptions=True)
        raise
    queue, note = await inspecting
    return StatusReport(
        time=moment,
        broker="" if broker is None else type(broker).__name__,
        workers=workers,
        queue=queue,
        queue_note=note,
        throughput=[throughput(rates, minutes, moment) for minutes in WINDOWS],
        failures=latest,
    )


def throughput(rates: list[MinuteRate], minutes: int, now: float) -> Throughput:
    """The `Throughput` of the last ``minutes`` whole minutes of ``rates`` and the current one."""
    window = rates[-(minutes + 1) :]
    succeeded = sum(rate.count(EventKind.SUCCEEDED) for rate in window)
    failed = sum(rate.count(EventKind.FAILED) for rate in window)
    span_s = minutes * 60 + (now - rates[-1].minute)
    finished = succeeded + failed
    return Throughput(
        minutes=minutes,
        succeeded=succeeded,
        failed=failed,
        per_minute=finished * 60 / span_s,
        failure_rate=failed / finished if finished else None,
    )


async def _inspect(broker: AsyncBroker | None) -> tuple[QueueInspection | None, str | None]:
    if broker is None:
        return None, "no broker given"
    if Capability.INSPECT not in broker.capabilities:
        return None, f"{type(broker).__name__} does not declare inspect"
    try:
        return await broker.inspect(), None
    except TaskiqError as error:
        return None, f"inspect failed: {error}"
