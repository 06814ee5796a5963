"""Recording task events: what a worker and `kiq` record, batching, a store that is down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from taskq import InMemoryCancellationStore, Receiver
from taskq.event_recorder import EventRecorder, traceback_text
from taskq.event_stores import InMemoryEventStore
from taskq.exceptions import EventStoreError, TaskCancelledError, TaskRejectedError
from taskq.message import TaskiqMessage
from taskq.remote_error import encode_error
from taskq.task_events import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_TRACEBACK_CHARS,
    EventKind,
    EventRow,
    TaskQuery,
    WorkerHeartbeat,
    WorkerId,
)
from taskq.testing import eventually
from taskq_inmemory import InMemoryBroker


async def kinds(store: InMemoryEventStore, task_id: str) -> list[str]:
    return [event.kind.value for event in await store.task_events(task_id)]


async def test_a_task_records_sent_received_started_and_its_outcome() -> None:
    store = InMemoryEventStore()
    broker = InMemoryBroker().with_event_store(store)

    @broker.task
    async def add(a: int, b: int) -> int:
        return a + b

    @broker.task
    async def boom() -> None:
        raise ValueError("no luck")

    @broker.task
    async def refuse() -> None:
        raise TaskRejectedError()

    @broker.task
    async def give_up() -> None:
        raise TaskCancelledError("cancelled by the operator")

    async with broker:
        tasks = [await add.kiq(1, 2), await boom.kiq(), await refuse.kiq(), await give_up.kiq()]
        await broker.wait_all()
    ok, failed, rejected, cancelled = (task.task_id for task in tasks)
    assert await kinds(store, ok) == ["sent", "received", "started", "succeeded"]
    assert await kinds(store, rejected) == ["sent", "received", "started", "rejected"]
    assert await kinds(store, cancelled) == ["sent", "received", "started", "cancelled"]
    events = await store.task_events(failed)
    assert [event.kind.value for event in events] == ["sent", "received", "started", "failed"]
    failure = events[-1]
    assert (failure.error_type, failure.error_message) == ("ValueError", "no luck")
    assert failure.duration is not None
    assert failure.duration >= 0
    assert failure.task_name == boom.task_name
    assert failure.traceback is not None
    assert 'raise ValueError("no luck")' in failure.traceback
    assert failure.traceback.endswith("ValueError: no luck\n")
    (worker,) = await store.workers(stale_after=60)
    assert worker.alive
    assert (worker.heartbeat.processed, worker.heartbeat.failed) == (4, 1)
    assert worker.heartbeat.broker == "InMemoryBroker"


class Unprintable(Exception):
    """An exception whose text and representation cannot be made."""

    def __str__(self) -> str:
        raise RuntimeError("no text")

    def __repr__(self) -> str:
        raise RuntimeError("no representation")


async def test_a_task_failing_with_an_unprintable_exception_gets_its_failed_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = InMemoryEventStore()
    broker = InMemoryBroker().with_event_store(store)

    @broker.task
    async def boom() -> None:
        raise Unprintable()

    async with broker:
        task = await boom.kiq()
        result = await task.wait_result(timeout=30)
    assert isinstance(result.error, Unprintable)
    assert encode_error(result.error)["message"] == "<Unprintable: str() failed with RuntimeError>"
    events = await store.task_events(task.task_id)
    assert events[-1].kind is EventKind.FAILED
    assert events[-1].error_message == "<Unprintable: str() failed with RuntimeError>"
    (logged,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Unprintable" in logged.getMessage()


async def test_a_sent_event_keeps_the_message_to_send_it_again_within_its_bound() -> None:
    store = InMemoryEventStore()
    broker = InMemoryBroker().with_event_store(store, max_message_bytes=300)

    @broker.task
    async def echo(text: str, *, tag: str = "") -> str:
        return text

    async with broker:
        small = await echo.kicker().with_labels(team="ops").kiq("<b>hi</b>", tag="x")
        large = await echo.kiq("y" * 400)
        await broker.wait_all()
    sent = (await store.task_events(small.task_id))[0]
    assert sent.kind is EventKind.SENT
    assert sent.message is not None
    assert sent.message_size == len(sent.message)
    message = broker.formatter.loads(sent.message)
    assert (message.task_name, message.args, message.kwargs) == (
        echo.task_name,
        ["<b>hi</b>"],
        {"tag": "x"},
    )
    assert message.labels["team"] == "ops"
    too_large = (await store.task_events(large.task_id))[0]
    assert too_large.message is None, "a message over the bound is not kept"
    assert too_large.message_size is not None
    assert too_large.message_size > 300


def test_a_negative_message_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_message_bytes"):
        InMemoryBroker().with_event_store(InMemoryEventStore(), max_message_bytes=-1)


async def test_messages_the_worker_refuses_are_recorded_as_rejected() -> None:
    store = InMemoryEventStore()
    broker = InMemoryBroker().with_event_store(store)
    broker.is_worker_process = True  # the test plays the worker
    async with broker:
        message = broker.formatter.dumps(TaskiqMessage("t-1", "nowhere:unknown", {}, [], {}))
        await broker.receiver.callback(message.message)
    assert await kinds(store, "t-1") == ["received", "rejected"]
    (task,) = (await store.tasks()).tasks
    assert task.error_type == "UnknownTaskError"


class FlakyStore(InMemoryEventStore):
    """Fails every write while ``down``; counts the writes that reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.writes = 0
        self.attempts = 0

    async def write_rows(
        self,
        worker: WorkerId,
        rows: Sequence[EventRow],
        heartbeats: Sequence[WorkerHeartbeat] = (),
    ) -> None:
        self.attempts += 1
        if self.down:
            raise EventStoreError("the store is down")
        self.writes += 1
        await super().write_rows(worker, rows, heartbeats)


async def test_events_are_written_in_batches_not_one_by_one() -> None:
    store = FlakyStore()
    recorder = EventRecorder(store, flush_interval_s=0.05, batch_size=100)
    recorder.start()
    for n in range(1000):
        recorder.record(EventKind.SENT, f"task-{n}", "job")
    await recorder.close()
    assert len((await store.tasks()).tasks) == 50  # one page of the 1000 tasks
    assert store.writes <= 12, f"{store.writes} writes for 1000 events in batches of 100"


async def test_a_store_that_is_down_loses_the_oldest_events_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore()
    store.down = True
    recorder = EventRecorder(store, flush_interval_s=0.01, max_buffered=100, batch_size=10)
    recorder.start()
    with caplog.at_level(logging.WARNING, logger="taskq.events"):
        for n in range(250):
            recorder.record(EventKind.SENT, f"task-{n}", "job")  # never blocks, never raises
        await eventually(lambda: "event store failed" in caplog.text)
        await eventually(lambda: "Dropped" in caplog.text)
        store.down = False
        await recorder.close()
    assert recorder.dropped == 150
    kept = {event.task_id for event in (await store.tasks(TaskQuery(limit=1000))).tasks}
    assert kept == {f"task-{n}" for n in range(150, 250)}  # the newest 100


async def test_drops_during_an_outage_are_reported_at_once_then_when_it_ends_not_per_flush(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a warning per flush was two a second for as long as the store stayed down (7,200 an
    # hour per worker process)
    store = FlakyStore()
    store.down = True
    recorder = EventRecorder(store, flush_interval_s=0.01, max_buffered=10, batch_size=10)
    recorder.start()
    with caplog.at_level(logging.WARNING, logger="taskq.events"):
        for round_ in range(5):
            for n in range(20):
                recorder.record(EventKind.SENT, f"task-{round_}-{n}", "job")
            tried = store.attempts
            await eventually(lambda: store.attempts > tried + 1, what="two more flushes")  # noqa: B023
        store.down = False
        await recorder.close()
    reports = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Dropped")]
    assert recorder.dropped == 90
    assert len(reports) == 2, reports  # the first drop, then the rest once the store answers
    assert reports[-1].startswith("Dropped 80 task event(s) (90 in all)")


async def test_record_now_keeps_its_fields_and_drops_the_oldest_when_full() -> None:
    store = InMemoryEventStore()
    recorder = EventRecorder(store, flush_interval_s=3600, max_buffered=2)
    recorder.record_now(EventKind.RECEIVED, "t", "job")
    recorder.record_now(EventKind.STARTED, "t", "job")
    recorder.record_now(EventKind.SUCCEEDED, "t", "job", (("duration", 0.25),))
    await recorder.close()
    assert recorder.dropped == 1
    events = await store.task_events("t")
    assert [(event.kind.value, event.duration) for event in events] == [
        ("started", None),
        ("succeeded", 0.25),
    ]


async def test_close_writes_what_is_buffered_and_a_last_heartbeat() -> None:
    store = InMemoryEventStore()
    recorder = EventRecorder(store, flush_interval_s=3600)
    recorder.beat_with(lambda rec: rec.heartbeat("Broker", "queue", 4, 0))
    recorder.start()
    recorder.record(EventKind.SENT, "t", "job")
    await asyncio.sleep(0)
    await recorder.close()
    assert await kinds(store, "t") == ["sent"]
    (worker,) = await store.workers(stale_after=60)
    assert (worker.heartbeat.concurrency, worker.heartbeat.queue) == (4, "queue")


class LateAnswerStore(InMemoryEventStore):
    """Stores a write at once but answers it only once ``answer`` is set (a reply on its way)."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = asyncio.Event()
        self.answer = asyncio.Event()

    async def write_rows(
        self,
        worker: WorkerId,
        rows: Sequence[EventRow],
        heartbeats: Sequence[WorkerHeartbeat] = (),
    ) -> None:
        await super().write_rows(worker, rows, heartbeats)
        self.writing.set()
        await self.answer.wait()


async def test_close_lets_a_write_in_progress_finish_instead_of_writing_it_again() -> None:
    store = LateAnswerStore()
    recorder = EventRecorder(store, flush_interval_s=0.01)
    recorder.start()
    recorder.record(EventKind.SENT, "t", "job")
    await asyncio.wait_for(store.writing.wait(), 5)
    closing = asyncio.ensure_future(recorder.close())
    await asyncio.sleep(0)  # close has begun while the write waits for its answer
    store.answer.set()
    await asyncio.wait_for(closing, 5)
    assert await kinds(store, "t") == ["sent"]


class HangingStore(InMemoryEventStore):
    """Never answers a write."""

    async def write_rows(
        self,
        worker: WorkerId,
        rows: Sequence[EventRow],
        heartbeats: Sequence[WorkerHeartbeat] = (),
    ) -> None:
        await asyncio.Event().wait()


async def test_close_gives_up_on_a_store_that_never_answers(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("taskq.event_recorder.CLOSE_TIMEOUT_S", 0.2)
    recorder = EventRecorder(HangingStore(), flush_interval_s=0.01)
    recorder.start()
    recorder.record(EventKind.SENT, "t", "job")
    await asyncio.sleep(0.05)  # the background writer is stuck in its write
    with caplog.at_level(logging.WARNING, logger="taskq.events"):
        await asyncio.wait_for(recorder.close(), 5)
    assert "1 task event(s) were not recorded" in caplog.text


async def test_a_task_cancelled_before_it_starts_records_a_cancellation(
    recording_broker, encode
) -> None:
    store = InMemoryEventStore()
    broker = recording_broker.with_event_store(store)
    broker.with_cancellation(InMemoryCancellationStore())

    @broker.task
    async def work() -> None:
        raise AssertionError("a cancelled task ran")

    async with broker:
        await broker.cancel("t1", reason="not wanted")
        await Receiver(broker).callback(broker.ackable(encode(broker, work.task_name)))
    assert await kinds(store, "t1") == ["received", "cancelled"]
    (task,) = (await store.tasks()).tasks
    assert task.error_type == "TaskCancelledError"


def test_a_recorded_traceback_keeps_its_end_within_the_bound() -> None:
    cause: BaseException | None = None
    for level in range(20):  # a chain of errors, each with a message under a part's bound
        try:
            raise RuntimeError(f"level {level} " + "x" * 900) from cause
        except RuntimeError as error:
            cause = error
    try:
        raise RuntimeError("at the bottom") from cause
    except RuntimeError as error:
        text = traceback_text(error)
    assert text is not None
    assert len(text) == MAX_TRACEBACK_CHARS
    assert text.endswith("RuntimeError: at the bottom\n")
    assert traceback_text(RuntimeError("never raised")) is None


def test_a_long_error_message_leaves_the_frames_in_the_traceback() -> None:
    # the last 8,192 characters of the traceback of an error quoting a payload were all payload:
    # where the error was raised was gone
    def parse_order() -> None:
        raise ValueError("cannot parse " + "y" * 100_000)

    try:
        parse_order()
    except ValueError as error:
        text = traceback_text(error)
    assert text is not None
    assert "in parse_order" in text
    assert "ValueError: cannot parse yyy" in text
    assert text.endswith(" more characters)\n")


async def test_a_failure_keeps_the_beginning_of_a_huge_error_message_within_the_bound() -> None:
    # an error quoting a whole payload: kept whole, each such failure cost the Redis store
    # twice its size (with its task and among the failures), 20 MB for a 10 MB message
    store = InMemoryEventStore()
    broker = InMemoryBroker().with_event_store(store)

    @broker.task
    async def parse() -> None:
        raise ValueError("cannot parse " + "y" * 10_000_000)

    async with broker:
        task = await parse.kiq()
        await broker.wait_all()
    failed = (await store.task_events(task.task_id))[-1]
    assert failed.error_message is not None
    assert len(failed.error_message) == MAX_ERROR_MESSAGE_CHARS
    assert failed.error_message.startswith("cannot parse yyy")
