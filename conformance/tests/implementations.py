"""Implementations the conformance suite is run against to show that it catches defects.

Each broken class is a correct in-memory implementation with exactly ONE defect, named in its
docstring; the zero-argument ``make_*`` factories at the end are the targets given to
``--taskq-broker`` / ``--taskq-result-backend`` / ``--taskq-schedule-source`` /
``--taskq-limiter`` / ``--taskq-unique-store`` / ``--taskq-cancellation-store``.
Three are correct: `InMemoryScheduleSource`, since no schedule source ships with taskq yet and
the suite needs one to show that its schedule source checks pass,
`SharedDirectoryResultBackend`, to run the ``cross_process`` checks of result backends, and
`DirectoryQueueBroker`, whose two factories show the factory contract kept and broken
(`RemembersWhatItSent`, correct too, is the base of two defects and has no factory).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from functools import partial
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
from taskq.abc.cancellation import DEFAULT_CANCELLATION_TTL_S
from taskq.control.limits import RateLimit
from taskq.control.memory_limiter import MemoryLimiter
from taskq.control.memory_unique import MemoryUniqueStore
from taskq.event_stores import InMemoryEventStore
from taskq.exceptions import MessageDecodeError, ResultGetError
from taskq.inspection import QueueInspection
from taskq.task_events import (
    EventRow,
    TaskEvent,
    WorkerHeartbeat,
    WorkerId,
    WorkerStatus,
    bounded_events,
    bounded_heartbeats,
    check_times,
    stored_task_id,
    stored_task_name,
)
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


class RepeatsTheLastOfABatch(InMemoryBroker):
    """Defect: `kick_many` queues the last message of each batch twice (a retried last write)."""

    async def kick_many(self, messages: Sequence[BrokerMessage]) -> None:
        await super().kick_many([*messages, *messages[-1:]])


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


class DropsAPrioritisedMessage(InMemoryBroker):
    """Defect: the first message with a ``priority`` label of 9 is silently dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = False

    async def kick(self, message: BrokerMessage) -> None:
        if message.labels.get("priority") == 9 and not self.dropped:
            self.dropped = True
            return
        await super().kick(message)


class DeliversDelayedMessagesLate(InMemoryBroker):
    """Defect: a delayed message is delivered 8 s after its delay ended."""

    async def kick(self, message: BrokerMessage) -> None:
        labels = message.labels
        if labels.get("delay"):
            labels = {**labels, "delay": float(labels["delay"]) + 8}
        await super().kick(dataclasses.replace(message, labels=labels))


class DeliversDelayedMessagesEarly(InMemoryBroker):
    """Defect: a delayed message comes 30 % of its delay early (its due moment rounded down).

    0.3 s early in the suite's 1 s delay: a loaded machine may deliver it tens of milliseconds
    late, which 8 % (30 ms before the suite's limit) did not outlast.
    """

    async def kick(self, message: BrokerMessage) -> None:
        labels = message.labels
        if labels.get("delay"):
            labels = {**labels, "delay": float(labels["delay"]) * 0.7}
        await super().kick(dataclasses.replace(message, labels=labels))


class CutsTrailingZeroBytes(InMemoryBroker):
    """Defect: message bytes are kept as C strings: trailing zero bytes are cut off."""

    async def kick(self, message: BrokerMessage) -> None:
        await super().kick(dataclasses.replace(message, message=message.message.rstrip(b"\0")))


class SharesOneSendingSlot(InMemoryBroker):
    """Defect: concurrent kicks share one slot: each sends whatever the latest one put there."""

    def __init__(self) -> None:
        super().__init__()
        self.sending: BrokerMessage | None = None

    async def kick(self, message: BrokerMessage) -> None:
        self.sending = message
        await asyncio.sleep(0)  # as a write to a connection would
        assert self.sending is not None
        await super().kick(self.sending)


class PriorityOnlyBeforeListening(InMemoryBroker):
    """Defect: ``priority`` is honoured only for messages sent before anyone listened."""

    listened = False

    async def kick(self, message: BrokerMessage) -> None:
        if self.listened:
            labels = {name: value for name, value in message.labels.items() if name != "priority"}
            message = dataclasses.replace(message, labels=labels)
        await super().kick(message)

    async def listen(self) -> AsyncGenerator[bytes, None]:
        self.listened = True
        async for data in super().listen():
            yield data


class NeverRedelivers(InMemoryBroker):
    """Defect: declares ``acks`` and ``redelivery``, but an unacknowledged message is lost."""

    lease_s = 1.0

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


#: Seconds between two looks of a directory queue's consumer at the queue: each look lists
#: every directory, so shorter would burn the CPU the other runs of the suite need.
DIRECTORY_POLL_S = 0.05


class DirectoryQueueBroker(AsyncBroker):
    """A correct queue of files in the directory it is given; its factories differ.

    A consumer claims a file by moving it to a directory of its own, whose files it touches
    every quarter of ``lease_s`` while it lives; files untouched for ``lease_s`` (their
    consumer was killed) go back to the queue. An ack or a reject deletes a file, a shutdown
    hands the unsettled back. `make_shared_directory_broker` honours the factory contract: the
    directory is exported in the environment, so every instance, here or in a child process,
    uses it. `make_fresh_directory_broker` has the defect: a new directory per call, so a
    second instance never sees the first one's messages, and the suite must blame the factory.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.ACKS, Capability.REJECT, Capability.REDELIVERY, Capability.CROSS_PROCESS}
    )

    def __init__(self, directory: Path, lease_s: float = 1.0) -> None:
        super().__init__()
        self.lease_s = lease_s
        self.queue = directory / "queue"
        self.consumers = directory / "claimed"
        self.claimed = self.consumers / uuid.uuid4().hex
        self.tmp = directory / "tmp"
        self.running = False
        self.heartbeat: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        for path in (self.queue, self.claimed, self.tmp):
            path.mkdir(parents=True, exist_ok=True)
        self.running = True
        self.heartbeat = asyncio.ensure_future(self.keep_leases())
        await super().startup()

    async def shutdown(self) -> None:
        self.running = False
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            await asyncio.gather(self.heartbeat, return_exceptions=True)
        for name in os.listdir(self.claimed):  # the consumer is gone: hand back what it held
            os.replace(self.claimed / name, self.queue / name)
        await super().shutdown()

    async def kick(self, message: BrokerMessage) -> None:
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
        (self.tmp / name).write_bytes(message.message)
        os.replace(self.tmp / name, self.queue / name)

    async def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        while self.running:
            self.take_over_expired()
            for name in self.claim():
                yield self.message(name)
            await asyncio.sleep(DIRECTORY_POLL_S)

    def claim(self, most: int | None = None) -> list[str]:
        """Move up to ``most`` files of the queue to this consumer's directory, oldest first."""
        claimed: list[str] = []
        for name in sorted(os.listdir(self.queue))[:most]:
            try:
                os.utime(self.queue / name)  # a fresh lease, before the file is ours
                os.replace(self.queue / name, self.claimed / name)
            except FileNotFoundError:  # another consumer claimed it first
                continue
            claimed.append(name)
        return claimed

    def message(self, name: str) -> AckableMessage:
        """The claimed file ``name`` as a message whose ack and reject delete it."""
        data = (self.claimed / name).read_bytes()
        return AckableMessage(
            data, ack=partial(self.delete, name), reject=partial(self.delete, name)
        )

    def delete(self, name: str) -> None:
        """Settle the claimed file ``name`` (gone already when it was taken over)."""
        with contextlib.suppress(FileNotFoundError):
            (self.claimed / name).unlink()

    async def keep_leases(self) -> None:
        """Touch the files this consumer holds, every quarter of the lease."""
        while True:
            for name in os.listdir(self.claimed):
                with contextlib.suppress(FileNotFoundError):
                    os.utime(self.claimed / name)
            await asyncio.sleep(self.lease_s / 4)

    def take_over_expired(self) -> None:
        """Move the files other consumers stopped touching for a lease back to the queue."""
        for path in self.expired():
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, self.queue / path.name)

    def expired(self) -> list[Path]:
        """The files other consumers stopped touching for a lease."""
        expired = time.time() - self.lease_s
        found: list[Path] = []
        for consumer in os.listdir(self.consumers):
            if consumer == self.claimed.name:
                continue
            for name in os.listdir(self.consumers / consumer):
                path = self.consumers / consumer / name
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < expired:
                        found.append(path)
        return found


class LeaseNotKeptAlive(DirectoryQueueBroker):
    """Defect: the holder never renews its lease, so a message is taken from a live consumer."""

    async def keep_leases(self) -> None:
        await asyncio.Event().wait()


class NeverTakesOverExpiredLeases(DirectoryQueueBroker):
    """Defect: messages come back when their consumer shuts down, never when it dies."""

    def take_over_expired(self) -> None:
        return


class RemembersWhatItSent(DirectoryQueueBroker):
    """A correct `DirectoryQueueBroker` that remembers what it kicked (two defects build on it)."""

    def __init__(self, directory: Path, lease_s: float = 1.0) -> None:
        super().__init__(directory, lease_s)
        self.sent: set[bytes] = set()

    async def kick(self, message: BrokerMessage) -> None:
        self.sent.add(message.message)
        await super().kick(message)

    def sent_here(self, path: Path) -> bool:
        """Whether this instance kicked the message in ``path`` (False once it was moved)."""
        try:
            return path.read_bytes() in self.sent
        except FileNotFoundError:
            return False


class OnlyTheSenderTakesOver(RemembersWhatItSent):
    """Defect: only the instance that kicked a message takes it over from a vanished consumer.

    The lease bookkeeping lives with the sender: where one process sends and consumes, what a
    killed consumer held comes back; a worker that sent nothing never takes it over, and a
    sender that does not consume (a web server) never does either.
    """

    def expired(self) -> list[Path]:
        return [path for path in super().expired() if self.sent_here(path)]


class NeverTakesOverItsOwn(RemembersWhatItSent):
    """Defect: an instance never takes over from a vanished consumer a message it kicked itself.

    It counts what it sent as its own work in progress: a worker that kicks follow-up tasks
    never gets them back when the worker that took them dies.
    """

    def expired(self) -> list[Path]:
        return [path for path in super().expired() if not self.sent_here(path)]


class RejectedComeBackOnShutdown(DirectoryQueueBroker):
    """Defect: `reject` forgets the message instead of deleting it: a shutdown hands it back."""

    def message(self, name: str) -> AckableMessage:
        message = super().message(name)
        return AckableMessage(message.data, ack=message.ack, reject=lambda: None)


class LosesPrefetchedOnLeave(DirectoryQueueBroker):
    """Defect: claims three messages at a time; a shutdown drops those not yet yielded."""

    def __init__(self, directory: Path, lease_s: float = 1.0) -> None:
        super().__init__(directory, lease_s)
        self.prefetched: deque[str] = deque()

    async def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        while self.running:
            self.take_over_expired()
            self.prefetched.extend(self.claim(3))
            while self.prefetched:
                yield self.message(self.prefetched.popleft())
            await asyncio.sleep(DIRECTORY_POLL_S)

    async def shutdown(self) -> None:
        while self.prefetched:  # acknowledged on receipt, as if already processed
            self.delete(self.prefetched.popleft())
        await super().shutdown()


class AckDoesNothing(DirectoryQueueBroker):
    """Defect: `ack` does nothing: an acknowledged message comes back once its lease runs out.

    Its shutdown leaves what the consumer held to the lease, as a server keeping leases does
    (correct in itself), so the acknowledged message comes back only after a lease.
    """

    def message(self, name: str) -> AckableMessage:
        message = super().message(name)
        return AckableMessage(message.data, ack=lambda: None, reject=message.reject)

    async def shutdown(self) -> None:
        self.running = False
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            await asyncio.gather(self.heartbeat, return_exceptions=True)
        await AsyncBroker.shutdown(self)


class ListenNeverEnds(InMemoryBroker):
    """Defect: `listen` keeps waiting after `shutdown` instead of returning."""

    async def listen(self) -> AsyncGenerator[bytes, None]:
        async for data in super().listen():
            yield data
        await asyncio.Event().wait()


class SwallowsACancellationAsItStarts(InMemoryBroker):
    """Defect: `listen` loses a cancellation that arrives while it starts, and goes on.

    As a client library's ``asyncio.wait_for`` (before Python 3.12) does when the cancellation
    arrives as its call completes.
    """

    async def listen(self) -> AsyncGenerator[bytes, None]:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)  # the start: a call completing as the cancellation arrives
        async for data in super().listen():
            yield data


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


class KeepsCancellationsForever(InMemoryCancellationStore):
    """Defect: a cancellation never expires (``ttl_s`` is ignored)."""

    async def cancel(self, task_id: str, reason: str = "") -> None:
        ttl_s, self.ttl_s = self.ttl_s, DEFAULT_CANCELLATION_TTL_S
        try:
            await super().cancel(task_id, reason)
        finally:
            self.ttl_s = ttl_s


class ClaimsToBeShared(InMemoryCancellationStore):
    """Defect: declares ``cross_process``, but each instance keeps its own records."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CROSS_PROCESS})


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


class SlowNotify(InmemoryResultBackend[Any]):
    """Defect: declares ``notify`` (inherited) but wakes a waiter 4 s after the result is stored.

    (Never after the waiter's timeout: a waiter that times out first is told the result is ready.)
    """

    def __init__(self) -> None:
        super().__init__(max_stored_results=-1)

    async def wait_ready(self, task_id: str, timeout: float | None, check_interval: float) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not await super().wait_ready(task_id, timeout, check_interval):
            return False
        late = 4.0 if deadline is None else min(4.0, deadline - time.monotonic())
        await asyncio.sleep(max(0.0, late))
        return True


class WaitOverstaysTimeout(InmemoryResultBackend[Any]):
    """Defect: `wait_ready` polls, and sleeps a whole check interval past its timeout."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.PROGRESS})

    def __init__(self) -> None:
        super().__init__(max_stored_results=-1)

    async def wait_ready(self, task_id: str, timeout: float | None, check_interval: float) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not await self.is_result_ready(task_id):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(check_interval)
        return True


class StaleAfterOverwrite(InmemoryResultBackend[Any]):
    """Defect: a read result is cached, so a result written again is read as the old one."""

    def __init__(self) -> None:
        super().__init__(max_stored_results=-1)
        self.cache: dict[str, TaskiqResult[Any]] = {}

    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[Any]:
        if task_id not in self.cache:
            self.cache[task_id] = await super().get_result(task_id, with_logs)
        return self.cache[task_id]


class StaleOnTheSpot(InmemoryResultBackend[Any]):
    """Defect: ``result_now`` keeps the first result it read, so a result written again is
    read on the spot as the old one (``get_result`` is right)."""

    def __init__(self) -> None:
        super().__init__(max_stored_results=-1)
        self.cache: dict[str, TaskiqResult[Any]] = {}

    def result_now(self, task_id: str) -> TaskiqResult[Any] | None:
        if task_id not in self.cache:
            held = super().result_now(task_id)
            if held is None:
                return None
            self.cache[task_id] = held
        return self.cache[task_id]


class ProgressInOneSlot(InmemoryResultBackend[Any]):
    """Defect: progress reports share one slot, so one task reads another's progress."""

    def __init__(self) -> None:
        super().__init__(max_stored_results=-1)
        self.latest: TaskProgress[Any] | None = None

    async def set_progress(self, task_id: str, progress: TaskProgress[Any]) -> None:
        self.latest = progress

    async def get_progress(self, task_id: str) -> TaskProgress[Any] | None:
        return self.latest


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


class DeletedIdsNeverComeBack(InMemoryScheduleSource):
    """Defect: a deleted id is remembered, and adding it again is silently ignored."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted: set[str] = set()

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        if schedule.schedule_id not in self.deleted:
            await super().add_schedule(schedule)

    async def delete_schedule(self, schedule_id: str) -> None:
        self.deleted.add(schedule_id)
        await super().delete_schedule(schedule_id)


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


class _WritesThroughWrite(InMemoryEventStore):
    """A correct store whose rows go through its `write`, as events: the base of broken ones."""

    async def write_rows(
        self,
        worker: WorkerId,
        rows: Sequence[EventRow],
        heartbeats: Sequence[WorkerHeartbeat] = (),
    ) -> None:
        await self.write([TaskEvent.from_row(worker, row) for row in rows], heartbeats)


class ReordersEvents(_WritesThroughWrite):
    """Defect: a task's events come back in write order, not by time."""

    def __init__(self) -> None:
        super().__init__()
        self.in_write_order: dict[str, list[TaskEvent]] = {}

    async def write(
        self, events: Sequence[TaskEvent], heartbeats: Sequence[WorkerHeartbeat] = ()
    ) -> None:
        for event in events:
            self.in_write_order.setdefault(event.task_id, []).append(event)
        await super().write(events, heartbeats)

    async def task_events(self, task_id: str) -> list[TaskEvent]:
        kept = await super().task_events(task_id)
        return list(self.in_write_order.get(task_id, [])) if kept else []


class LosesSentMessages(InMemoryEventStore):
    """Defect: rows keep every field but a sent event's message (a store that stores text only)."""

    async def write_rows(
        self,
        worker: WorkerId,
        rows: Sequence[EventRow],
        heartbeats: Sequence[WorkerHeartbeat] = (),
    ) -> None:
        kept = [
            (kind, task_id, name, at, tuple(d for d in details if d[0] != "message"))
            for kind, task_id, name, at, details in rows
        ]
        await super().write_rows(worker, kept, heartbeats)

    async def write(
        self, events: Sequence[TaskEvent], heartbeats: Sequence[WorkerHeartbeat] = ()
    ) -> None:
        await super().write([dataclasses.replace(e, message=None) for e in events], heartbeats)


class KeepsPartOfARefusedBatch(_WritesThroughWrite):
    """Defect: a batch with a time that is not a number loses that event only, silently."""

    async def write(
        self, events: Sequence[TaskEvent], heartbeats: Sequence[WorkerHeartbeat] = ()
    ) -> None:
        await super().write([e for e in events if math.isfinite(e.time)], heartbeats)


class KeepsLongTaskIdsWhole(_WritesThroughWrite):
    """Defect: a task id or name of any length is kept whole (a 5 MB id costs megabytes).

    The other fields are bounded as they must be.
    """

    async def write(
        self, events: Sequence[TaskEvent], heartbeats: Sequence[WorkerHeartbeat] = ()
    ) -> None:
        check_times((event.time for event in events), heartbeats)
        for event in events:
            (bounded,) = bounded_events([event])
            whole = dataclasses.replace(bounded, task_id=event.task_id, task_name=event.task_name)
            self._add(str(whole.worker), [whole.as_row()])
        self._finish_write(bounded_heartbeats(heartbeats))

    async def task_events(self, task_id: str) -> list[TaskEvent]:
        return [
            TaskEvent.from_row(WorkerId.parse(worker), (kind, task_id, name, at, details))
            for at, _, worker, kind, name, details in self._rows_of(task_id)
        ]

    def _rows_of(self, task_id: str) -> list[tuple[Any, ...]]:
        events = self._tasks.get(task_id, ())
        return [events[at : at + 6] for at in range(0, len(events), 6)]


class KeepsLongErrorTextsWhole(_WritesThroughWrite):
    """Defect: error texts, a retry's new task id, host names and heartbeat texts are kept whole.

    An error's type, message and traceback, a ``new_task_id``, a worker's host name and a
    heartbeat's broker, queue and version are kept at any length. Ids and names are bounded
    as they must be: a 10 MB error message a script writes costs the store 10 MB (twice: with
    its task and among the failures).
    """

    async def write(
        self, events: Sequence[TaskEvent], heartbeats: Sequence[WorkerHeartbeat] = ()
    ) -> None:
        check_times((event.time for event in events), heartbeats)
        for event in events:
            kind, task_id, name, at, details = event.as_row()
            row = (kind, stored_task_id(task_id), stored_task_name(name), at, details)
            self._add(str(event.worker), [row])
        self._finish_write(heartbeats)


class TrustsHeartbeatsDatedAhead(InMemoryEventStore):
    """Defect: a heartbeat dated in the future counts as alive, however far ahead.

    A worker whose host's clock runs an hour ahead looks alive for an hour after it stopped.
    """

    async def workers(self, stale_after: float, now: float | None = None) -> list[WorkerStatus]:
        moment = time.time() if now is None else now
        return [
            WorkerStatus(status.heartbeat, moment - status.last_seen <= stale_after)
            for status in await super().workers(stale_after, now=moment)
        ]


class IgnoresRetention(InMemoryEventStore):
    """Defect: nothing is ever dropped, whatever `retention` says."""

    def _retain(self, now: float) -> None:
        pass


class ReAddForgetsClaims(SharedStoreScheduleSource):
    """Defect: adding an id again forgets its claimed fires: a fire goes out twice."""

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        self.claims.pop(schedule.schedule_id, None)
        await super().add_schedule(schedule)


# -- factories: the targets given to the suite ---------------------------------------------------


# -- limiters and unique key stores ---------------------------------------------------------------


class CountsRefusals(MemoryLimiter):
    """Defect: a refused start counts towards the rate, so a busy key never gets a start."""

    async def acquire(
        self, key: str, token: str, rate: RateLimit | None, max_concurrency: int | None
    ) -> float:
        wait_s = await super().acquire(key, token, rate, max_concurrency)
        if wait_s > 0 and rate is not None:
            self._starts[key].append(time.monotonic())
        return wait_s


class RacesOnDecisions(MemoryLimiter):
    """Defect: reads the count, then lets other coroutines run before it records the start."""

    async def acquire(
        self, key: str, token: str, rate: RateLimit | None, max_concurrency: int | None
    ) -> float:
        running = len(self._running.get(key, ()))
        await asyncio.sleep(0)
        if max_concurrency is not None and running >= max_concurrency:
            return 0.25
        if max_concurrency is not None:
            self._running.setdefault(key, set()).add(token)
            return 0.0
        return await super().acquire(key, token, rate, max_concurrency)


class NeverReleases(MemoryLimiter):
    """Defect: `release` does nothing, so a place is held for ever."""

    async def release(self, key: str, token: str) -> None:
        return None


class RacesOnClaims(MemoryUniqueStore):
    """Defect: checks the key, then lets other coroutines run before it holds it."""

    async def claim(self, key: str, task_id: str, ttl_s: float) -> str | None:
        held = self._held.get(key)
        await asyncio.sleep(0)
        if held is not None and held[1] > time.monotonic():
            return held[0]
        self._held[key] = (task_id, time.monotonic() + ttl_s)
        return None


class DisownsItsKey(MemoryUniqueStore):
    """Defect: a task claiming the key it holds is told that a task holds it (itself)."""

    async def claim(self, key: str, task_id: str, ttl_s: float) -> str | None:
        held = self._held.get(key)
        if held is not None and held[1] > time.monotonic():
            return held[0]
        return await super().claim(key, task_id, ttl_s)


class FreesForAnyone(MemoryUniqueStore):
    """Defect: `release` frees the key whoever asks."""

    async def release(self, key: str, task_id: str) -> None:
        self._held.pop(key, None)


class IgnoresUniqueTtl(MemoryUniqueStore):
    """Defect: a key is held until released, whatever its TTL."""

    async def claim(self, key: str, task_id: str, ttl_s: float) -> str | None:
        return await super().claim(key, task_id, 3600.0)


class KeepsTheStartOfAKey(MemoryUniqueStore):
    """Defect: bounds a long key by keeping its first 200 characters (keys apart become one)."""

    async def claim(self, key: str, task_id: str, ttl_s: float) -> str | None:
        return await super().claim(key[:200], task_id, ttl_s)

    async def release(self, key: str, task_id: str) -> None:
        await super().release(key[:200], task_id)


class DigestsOnlyLongKeys(MemoryUniqueStore):
    """Defect: keeps a long key as ``sha256:<digest>``, and a short key of that form as it is."""

    @staticmethod
    def _stored(key: str) -> str:
        if len(key) <= 200:
            return key
        return "sha256:" + hashlib.sha256(key.encode()).hexdigest()

    async def claim(self, key: str, task_id: str, ttl_s: float) -> str | None:
        return await super().claim(self._stored(key), task_id, ttl_s)

    async def release(self, key: str, task_id: str) -> None:
        await super().release(self._stored(key), task_id)


def make_dropping_broker() -> InMemoryBroker:
    return DropsOneMessageInAHundred()


def make_duplicating_broker() -> InMemoryBroker:
    return DuplicatesOneMessage()


def make_batch_repeating_broker() -> InMemoryBroker:
    return RepeatsTheLastOfABatch()


def make_mangling_broker() -> InMemoryBroker:
    return ManglesNonUtf8Bytes()


def make_label_losing_broker() -> InMemoryBroker:
    return LosesLabels()


def make_undelaying_broker() -> InMemoryBroker:
    return DeliversDelayedMessagesAtOnce()


def make_priority_ignoring_broker() -> InMemoryBroker:
    return IgnoresPriority()


def make_priority_dropping_broker() -> InMemoryBroker:
    return DropsAPrioritisedMessage()


def make_non_redelivering_broker() -> InMemoryBroker:
    return NeverRedelivers()


def make_miscounting_broker() -> InMemoryBroker:
    return CountsDelayedAsReady()


def make_late_delay_broker() -> InMemoryBroker:
    return DeliversDelayedMessagesLate()


def make_early_delay_broker() -> InMemoryBroker:
    return DeliversDelayedMessagesEarly()


def make_zero_cutting_broker() -> InMemoryBroker:
    return CutsTrailingZeroBytes()


def make_one_slot_broker() -> InMemoryBroker:
    return SharesOneSendingSlot()


def make_priority_before_listening_broker() -> InMemoryBroker:
    return PriorityOnlyBeforeListening()


def shared_directory() -> Path:
    """The queue directory of the run, shared with the processes the suite starts."""
    directory = os.environ.get("TASKQ_TEST_QUEUE_DIR")
    if directory is None:  # made once: setdefault would make a directory at every call
        directory = os.environ["TASKQ_TEST_QUEUE_DIR"] = queue_directory()
    return Path(directory)


def queue_directory() -> str:
    """A new queue directory, removed when this process exits."""
    directory = tempfile.mkdtemp(prefix="taskq-conformance-queue-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def make_lease_dropping_broker() -> AsyncBroker:
    return LeaseNotKeptAlive(shared_directory())


def make_no_takeover_broker() -> AsyncBroker:
    return NeverTakesOverExpiredLeases(shared_directory())


def make_sender_only_takeover_broker() -> AsyncBroker:
    return OnlyTheSenderTakesOver(shared_directory())


def make_own_never_taken_over_broker() -> AsyncBroker:
    return NeverTakesOverItsOwn(shared_directory())


def make_rejected_returning_broker() -> AsyncBroker:
    return RejectedComeBackOnShutdown(shared_directory())


def make_prefetch_losing_broker() -> AsyncBroker:
    return LosesPrefetchedOnLeave(shared_directory())


def make_fresh_directory_broker() -> AsyncBroker:
    # a new directory per call (the defect), made inside the run's shared one, so that it
    # goes with it: the processes the suite kills never remove what they made themselves
    shared = shared_directory()
    shared.mkdir(parents=True, exist_ok=True)
    return DirectoryQueueBroker(Path(tempfile.mkdtemp(prefix="fresh-", dir=shared)))


def make_shared_directory_broker() -> AsyncBroker:
    return DirectoryQueueBroker(shared_directory())


#: What an earlier run of the suite, stopped mid-check, left in the queue: bodies of an older
#: version of the suite (untagged) and of a run with the nonce ``0123456789ab``.
LEFTOVERS = (
    b"7",
    b"reject me",
    b"",
    b"\x00\x00 zero bytes at both ends \x00\x00",
    b"tqc:0123456789ab:3:acked",
    b"tqc:0123456789ab:11:9",
)
#: What a consumer of that run held when it was killed (its lease long expired).
HELD_LEFTOVER = b"tqc:0123456789ab:20:held-0"


def make_directory_broker_with_leftovers() -> AsyncBroker:
    """The shared directory queue, holding at the start of the run what an earlier run left.

    The first call of the run puts `LEFTOVERS` first in the queue and `HELD_LEFTOVER` with a
    killed consumer; later calls (child processes too) find them planted.
    """
    directory = shared_directory()
    planted = directory / "leftovers-planted"
    if not planted.exists():
        queue, killed = directory / "queue", directory / "claimed" / "killed-consumer"
        for path in (queue, killed):
            path.mkdir(parents=True, exist_ok=True)
        for n, body in enumerate(LEFTOVERS):
            (queue / f"{n:020d}-leftover").write_bytes(body)
        held = killed / f"{len(LEFTOVERS):020d}-leftover"
        held.write_bytes(HELD_LEFTOVER)
        os.utime(held, (0, 0))
        planted.touch()
    return DirectoryQueueBroker(directory)


def make_ack_ignoring_broker() -> AsyncBroker:
    return AckDoesNothing(shared_directory(), lease_s=2.0)


def make_endless_listen_broker() -> InMemoryBroker:
    return ListenNeverEnds()


def make_cancellation_swallowing_broker() -> InMemoryBroker:
    return SwallowsACancellationAsItStarts()


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


def make_slow_notify_backend() -> InmemoryResultBackend[Any]:
    return SlowNotify()


def make_overstaying_wait_backend() -> InmemoryResultBackend[Any]:
    return WaitOverstaysTimeout()


def make_stale_backend() -> InmemoryResultBackend[Any]:
    return StaleAfterOverwrite()


def make_stale_on_the_spot_backend() -> InmemoryResultBackend[Any]:
    return StaleOnTheSpot()


def make_one_progress_slot_backend() -> InmemoryResultBackend[Any]:
    return ProgressInOneSlot()


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


def make_tombstoning_source() -> ScheduleSource:
    return DeletedIdsNeverComeBack()


def make_claim_forgetting_source() -> ScheduleSource:
    return ReAddForgetsClaims()


def make_undeclared_dynamic_source() -> ScheduleSource:
    return AddsWithoutDeclaringDynamic()


def make_event_dropping_store() -> AsyncEventStore:
    return DropsAnEvent()


def make_reordering_store() -> AsyncEventStore:
    return ReordersEvents()


def make_message_losing_store() -> AsyncEventStore:
    return LosesSentMessages()


def make_partly_refusing_store() -> AsyncEventStore:
    return KeepsPartOfARefusedBatch()


def make_retention_ignoring_store() -> AsyncEventStore:
    return IgnoresRetention()


def make_long_id_keeping_store() -> AsyncEventStore:
    return KeepsLongTaskIdsWhole()


def make_long_text_keeping_store() -> AsyncEventStore:
    return KeepsLongErrorTextsWhole()


def make_future_trusting_store() -> AsyncEventStore:
    return TrustsHeartbeatsDatedAhead()


def make_refusal_counting_limiter() -> MemoryLimiter:
    return CountsRefusals()


def make_racing_limiter() -> MemoryLimiter:
    return RacesOnDecisions()


def make_never_releasing_limiter() -> MemoryLimiter:
    return NeverReleases()


def make_racing_unique_store() -> MemoryUniqueStore:
    return RacesOnClaims()


def make_disowning_unique_store() -> MemoryUniqueStore:
    return DisownsItsKey()


def make_freeing_unique_store() -> MemoryUniqueStore:
    return FreesForAnyone()


def make_ttl_ignoring_unique_store() -> MemoryUniqueStore:
    return IgnoresUniqueTtl()


def make_key_cutting_unique_store() -> MemoryUniqueStore:
    return KeepsTheStartOfAKey()


def make_long_key_digesting_unique_store() -> MemoryUniqueStore:
    return DigestsOnlyLongKeys()


def make_forgetful_cancellation_store() -> InMemoryCancellationStore:
    return ForgetfulCancellationStore()


def make_deaf_cancellation_store() -> InMemoryCancellationStore:
    return DeafCancellationStore()


def make_never_expiring_cancellation_store() -> InMemoryCancellationStore:
    return KeepsCancellationsForever()


def make_unshared_cancellation_store() -> InMemoryCancellationStore:
    return ClaimsToBeShared()
