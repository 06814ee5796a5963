"""Implementations the conformance suite is run against to show that it catches defects.

Each broken class is a correct in-memory implementation with exactly ONE defect, named in its
docstring; the zero-argument ``make_*`` factories at the end are the targets given to
``--taskq-broker`` / ``--taskq-result-backend`` / ``--taskq-schedule-source``.
Three are correct: `InMemoryScheduleSource`, since no schedule source ships with taskq yet and
the suite needs one to show that its schedule source checks pass,
`SharedDirectoryResultBackend`, to run the ``cross_process`` checks of result backends, and
`DirectoryQueueBroker`, whose two factories show the factory contract kept and broken.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from taskq import (
    AckableMessage,
    AsyncBroker,
    AsyncEventStore,
    AsyncResultBackend,
    BrokerMessage,
    Cancellation,
    Capability,
    InMemoryCancellationStore,
    ScheduledTask,
    ScheduleSource,
    TaskiqResult,
    TaskProgress,
)
from taskq.event_stores import InMemoryEventStore
from taskq.exceptions import MessageDecodeError, ResultGetError
from taskq.inspection import QueueInspection
from taskq.task_events import TaskEvent, WorkerHeartbeat
from taskq_inmemory import InMemoryBroker, InmemoryResultBackend

# -- brokers -------------------------------------------------------------------------------------


class DropsOneMessageInAHundred(InMemoryBroker):
    """Defect: every hundredth message given to `kick` is silently dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.kicked = 0

    async def kick(self, message: BrokerMessage) -> None:
        self.kicked += 1
        if self.kicked % 100 == 0:
            return
        await super().kick(message)


class DuplicatesOneMessage(InMemoryBroker):
    """Defect: the fiftieth message given to `kick` is queued twice."""

    def __init__(self) -> None:
        super().__init__()
        self.kicked = 0

    async def kick(self, message: BrokerMessage) -> None:
        self.kicked += 1
        if self.kicked == 50:
            await super().kick(message)
        await super().kick(message)


class ManglesNonUtf8Bytes(InMemoryBroker):
    """Defect: message bytes go through a text round trip that replaces invalid UTF-8."""

    async def kick(self, message: BrokerMessage) -> None:
        text = message.message.decode("utf-8", errors="replace")
        await super().kick(dataclasses.replace(message, message=text.encode("utf-8")))


class LosesLabels(InMemoryBroker):
    """Defect: task messages are decoded and encoded again without their labels."""

    async def kick(self, message: BrokerMessage) -> None:
        try:
            decoded = self.formatter.loads(message.message)
        except MessageDecodeError:  # not a task message: passed on as it is
            await super().kick(message)
            return
        decoded.labels = {}
        await super().kick(self.formatter.dumps(decoded))


class DeliversDelayedMessagesAtOnce(InMemoryBroker):
    """Defect: declares ``delay`` (inherited) but ignores the ``delay`` label."""

    async def kick(self, message: BrokerMessage) -> None:
        labels = {name: value for name, value in message.labels.items() if name != "delay"}
        await super().kick(dataclasses.replace(message, labels=labels))


class IgnoresPriority(InMemoryBroker):
    """Defect: declares ``priority`` (inherited) but ignores the ``priority`` label."""

    async def kick(self, message: BrokerMessage) -> None:
        labels = {name: value for name, value in message.labels.items() if name != "priority"}
        await super().kick(dataclasses.replace(message, labels=labels))


class NeverRedelivers(InMemoryBroker):
    """Defect: declares ``acks`` and ``redelivery``, but an unacknowledged message is lost."""

    capabilities: ClassVar[frozenset[Capability]] = InMemoryBroker.capabilities | {
        Capability.ACKS,
        Capability.REDELIVERY,
    }

    async def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        async for data in super().listen():
            yield AckableMessage(data, ack=lambda: None)


class CountsDelayedAsReady(InMemoryBroker):
    """Defect: declares ``inspect`` (inherited) but reports delayed messages as ready."""

    async def inspect(self) -> QueueInspection:
        counts = await super().inspect()
        return dataclasses.replace(counts, ready=counts.ready + counts.delayed, delayed=0)


class DirectoryQueueBroker(AsyncBroker):
    """A correct queue of files in the directory it is given; its factories differ.

    Claimed files move to a directory of the consumer's; an ack deletes one, a shutdown hands
    the unacknowledged back. `make_shared_directory_broker` honours the factory contract: the
    directory is exported in the environment, so every instance, here or in a child process,
    uses it. `make_fresh_directory_broker` has the defect: a new directory per call, so a
    second instance never sees the first one's messages, and the suite must blame the factory.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.ACKS, Capability.REDELIVERY, Capability.CROSS_PROCESS}
    )

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.queue = directory / "queue"
        self.claimed = directory / "claimed" / uuid.uuid4().hex
        self.tmp = directory / "tmp"
        self.running = False

    async def startup(self) -> None:
        for path in (self.queue, self.claimed, self.tmp):
            path.mkdir(parents=True, exist_ok=True)
        self.running = True
        await super().startup()

    async def shutdown(self) -> None:
        self.running = False
        for name in os.listdir(self.claimed):  # the consumer is gone: hand back what it held
            os.replace(self.claimed / name, self.queue / name)
        await super().shutdown()

    async def kick(self, message: BrokerMessage) -> None:
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
        (self.tmp / name).write_bytes(message.message)
        os.replace(self.tmp / name, self.queue / name)

    async def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        while self.running:
            for name in sorted(os.listdir(self.queue)):
                try:
                    os.replace(self.queue / name, self.claimed / name)
                except FileNotFoundError:  # another consumer claimed it first
                    continue
                data = (self.claimed / name).read_bytes()
                yield AckableMessage(data, ack=(self.claimed / name).unlink)
            await asyncio.sleep(0.01)


class ListenNeverEnds(InMemoryBroker):
    """Defect: `listen` keeps waiting after `shutdown` instead of returning."""

    async def listen(self) -> AsyncGenerator[bytes, None]:
        async for data in super().listen():
            yield data
        await asyncio.Event().wait()


class AckableWithoutDeclaringAcks(InMemoryBroker):
    """Defect: `listen` yields `AckableMessage` but the broker does not declare ``acks``."""

    async def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        async for data in super().listen():
            yield AckableMessage(data, ack=lambda: None)


class ForgetfulCancellationStore(InMemoryCancellationStore):
    """Defect: records no cancellation (the store of `ForgetsCancellations`)."""

    async def cancel(self, task_id: str, reason: str = "") -> None:
        return


class DeafCancellationStore(InMemoryCancellationStore):
    """Defect: never tells a listener of a cancellation (the store of `CancelsOnlyQueuedTasks`)."""

    async def listen(self) -> AsyncGenerator[Cancellation, None]:
        feed = await super().listen()
        await feed.aclose()
        return _silence()


async def _silence() -> AsyncGenerator[Cancellation, None]:
    await asyncio.Event().wait()
    yield Cancellation("never")  # pragma: no cover - never reached


class ForgetsCancellations(InMemoryBroker):
    """Defect: declares ``cancel``, but its cancellation store keeps nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.with_cancellation(ForgetfulCancellationStore())


class CancelsOnlyQueuedTasks(InMemoryBroker):
    """Defect: declares ``cancel``, but its workers never hear of a cancellation while running."""

    def __init__(self) -> None:
        super().__init__()
        self.with_cancellation(DeafCancellationStore())


# -- result backends -----------------------------------------------------------------------------


class AnswersTheLatestRead(InmemoryResultBackend[Any]):
    """Defect: concurrent reads share one request slot, so a read gets another task's result."""

    def __init__(self) -> None:
        super().__init__(max_stored_results=-1)
        self.requested = ""

    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[Any]:
        self.requested = task_id
        await asyncio.sleep(0)  # the round trip to the store, while other reads start
        return await super().get_result(self.requested, with_logs)


class LosesIsErr(InmemoryResultBackend[Any]):
    """Defect: every result is stored as a success (``is_err`` is dropped)."""

    def __init__(self) -> None:
        super().__init__(max_stored_results=-1)

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        await super().set_result(task_id, dataclasses.replace(result, is_err=False))


class DropsProgress(InmemoryResultBackend[Any]):
    """Defect: declares ``progress`` (inherited) but `get_progress` always returns None."""

    def __init__(self) -> None:
        super().__init__(max_stored_results=-1)

    async def get_progress(self, task_id: str) -> TaskProgress[Any] | None:
        return None


class IgnoresTtl(InmemoryResultBackend[Any]):
    """Defect: declares ``ttl`` and has ``result_ttl``, but results never expire."""

    def __init__(self) -> None:
        super().__init__(max_stored_results=-1)

    async def is_result_ready(self, task_id: str) -> bool:
        return task_id in self.results

    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[Any]:
        try:
            return self.results[task_id]
        except KeyError:
            raise ResultGetError(f"no result for {task_id}") from None


class PollsDespiteNotify(InmemoryResultBackend[Any]):
    """Defect: declares ``notify`` (inherited) but `wait_ready` only polls."""

    def __init__(self) -> None:
        super().__init__(max_stored_results=-1)

    async def wait_ready(self, task_id: str, timeout: float | None, check_interval: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not await self.is_result_ready(task_id):
            if deadline is not None and loop.time() >= deadline:
                return False
            pause = check_interval if deadline is None else deadline - loop.time()
            await asyncio.sleep(max(0.0, min(check_interval, pause)))
        return True


class SharedDirectoryResultBackend(AsyncResultBackend[Any]):
    """A correct ``cross_process`` backend: one JSON file per result in a shared directory.

    The directory is ``$TASKQ_TEST_RESULTS_DIR``, or one under the system's temporary directory.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CROSS_PROCESS})

    def __init__(self) -> None:
        default = Path(tempfile.gettempdir()) / "taskq-conformance-results"
        self.directory = Path(os.environ.get("TASKQ_TEST_RESULTS_DIR", default))

    async def startup(self) -> None:
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        data = json.dumps(result.to_dict())
        partial = self.directory / f"{task_id}.partial"
        await asyncio.to_thread(partial.write_text, data, encoding="utf-8")
        await asyncio.to_thread(partial.replace, self.directory / task_id)

    async def is_result_ready(self, task_id: str) -> bool:
        return await asyncio.to_thread((self.directory / task_id).exists)

    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[Any]:
        try:
            data = await asyncio.to_thread((self.directory / task_id).read_text, encoding="utf-8")
        except FileNotFoundError:
            raise ResultGetError(f"no result is stored for task {task_id}") from None
        return TaskiqResult.from_dict(json.loads(data))


# -- schedule sources ----------------------------------------------------------------------------


class InMemoryScheduleSource(ScheduleSource):
    """A correct source: schedules kept in this process, added and deleted at runtime."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.DYNAMIC})

    def __init__(self) -> None:
        self.schedules: dict[str, ScheduledTask] = {}

    async def get_schedules(self) -> list[ScheduledTask]:
        return [copy.deepcopy(schedule) for schedule in self.schedules.values()]

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        self.schedules[schedule.schedule_id] = copy.deepcopy(schedule)

    async def delete_schedule(self, schedule_id: str) -> None:
        self.schedules.pop(schedule_id, None)


class LosesArgs(InMemoryScheduleSource):
    """Defect: a schedule added at runtime is kept without its positional arguments."""

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        await super().add_schedule(dataclasses.replace(schedule, args=[]))


class DeleteDoesNothing(InMemoryScheduleSource):
    """Defect: `delete_schedule` returns without deleting anything."""

    async def delete_schedule(self, schedule_id: str) -> None:
        return


class AddsWithoutDeclaringDynamic(InMemoryScheduleSource):
    """Defect: accepts `add_schedule` but does not declare ``dynamic``."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()


class SharedStoreScheduleSource(InMemoryScheduleSource):
    """A correct persistent source: its store is shared by every instance in the process."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.DYNAMIC, Capability.PERSISTENT}
    )
    store: ClassVar[dict[str, ScheduledTask]] = {}
    claims: ClassVar[dict[str, datetime]] = {}

    def __init__(self) -> None:
        self.schedules = self.store

    async def delete_schedule(self, schedule_id: str) -> None:
        self.schedules.pop(schedule_id, None)
        self.claims.pop(schedule_id, None)

    async def claim_fire(self, schedule_id: str, fire_time: datetime) -> bool:
        last = self.claims.get(schedule_id)
        if schedule_id not in self.schedules or (last is not None and fire_time <= last):
            return False
        self.claims[schedule_id] = fire_time
        return True


class ClaimsEveryFire(SharedStoreScheduleSource):
    """Defect: declares ``persistent`` but lets every scheduler claim every fire."""

    async def claim_fire(self, schedule_id: str, fire_time: datetime) -> bool:
        return True


# -- event stores --------------------------------------------------------------------------------


class DropsAnEvent(InMemoryEventStore):
    """Defect: every fifth event written is lost."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    async def write(
        self, events: Sequence[TaskEvent], heartbeats: Sequence[WorkerHeartbeat] = ()
    ) -> None:
        kept = []
        for event in events:
            self.written += 1
            if self.written % 5:
                kept.append(event)
        await super().write(kept, heartbeats)


class ReordersEvents(InMemoryEventStore):
    """Defect: a task's events come back in write order, not by time."""

    async def task_events(self, task_id: str) -> list[TaskEvent]:
        task = self._tasks.get(task_id)
        return [] if task is None else [e for _, _, e in sorted(task.events, key=lambda i: i[1])]


class IgnoresRetention(InMemoryEventStore):
    """Defect: nothing is ever dropped, whatever `retention` says."""

    def _retain(self, now: float) -> None:
        pass


# -- factories: the targets given to the suite ---------------------------------------------------


def make_dropping_broker() -> InMemoryBroker:
    return DropsOneMessageInAHundred()


def make_duplicating_broker() -> InMemoryBroker:
    return DuplicatesOneMessage()


def make_mangling_broker() -> InMemoryBroker:
    return ManglesNonUtf8Bytes()


def make_label_losing_broker() -> InMemoryBroker:
    return LosesLabels()


def make_undelaying_broker() -> InMemoryBroker:
    return DeliversDelayedMessagesAtOnce()


def make_priority_ignoring_broker() -> InMemoryBroker:
    return IgnoresPriority()


def make_non_redelivering_broker() -> InMemoryBroker:
    return NeverRedelivers()


def make_miscounting_broker() -> InMemoryBroker:
    return CountsDelayedAsReady()


def make_fresh_directory_broker() -> AsyncBroker:
    return DirectoryQueueBroker(Path(tempfile.mkdtemp(prefix="taskq-conformance-queue-")))


def make_shared_directory_broker() -> AsyncBroker:
    directory = os.environ.setdefault(
        "TASKQ_TEST_QUEUE_DIR", tempfile.mkdtemp(prefix="taskq-conformance-queue-")
    )
    return DirectoryQueueBroker(Path(directory))


def make_endless_listen_broker() -> InMemoryBroker:
    return ListenNeverEnds()


def make_undeclared_acks_broker() -> InMemoryBroker:
    return AckableWithoutDeclaringAcks()


def make_cancellation_forgetting_broker() -> InMemoryBroker:
    return ForgetsCancellations()


def make_queued_only_cancelling_broker() -> InMemoryBroker:
    return CancelsOnlyQueuedTasks()


def make_mixing_backend() -> InmemoryResultBackend[Any]:
    return AnswersTheLatestRead()


def make_is_err_losing_backend() -> InmemoryResultBackend[Any]:
    return LosesIsErr()


def make_progress_dropping_backend() -> InmemoryResultBackend[Any]:
    return DropsProgress()


def make_ttl_ignoring_backend() -> InmemoryResultBackend[Any]:
    return IgnoresTtl()


def make_polling_backend() -> InmemoryResultBackend[Any]:
    return PollsDespiteNotify()


def make_shared_directory_backend() -> AsyncResultBackend[Any]:
    return SharedDirectoryResultBackend()


def make_schedule_source() -> ScheduleSource:
    return InMemoryScheduleSource()


def make_args_losing_source() -> ScheduleSource:
    return LosesArgs()


def make_undeleting_source() -> ScheduleSource:
    return DeleteDoesNothing()


def make_persistent_source() -> ScheduleSource:
    return SharedStoreScheduleSource()


def make_claiming_everything_source() -> ScheduleSource:
    return ClaimsEveryFire()


def make_undeclared_dynamic_source() -> ScheduleSource:
    return AddsWithoutDeclaringDynamic()


def make_event_dropping_store() -> AsyncEventStore:
    return DropsAnEvent()


def make_reordering_store() -> AsyncEventStore:
    return ReordersEvents()


def make_retention_ignoring_store() -> AsyncEventStore:
    return IgnoresRetention()
