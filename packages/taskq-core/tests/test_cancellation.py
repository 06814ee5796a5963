"""Cancelling tasks: queued ones never start, running ones stop, results and acks say so."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from taskq import (
    AcknowledgeType,
    AsyncBroker,
    BrokerMessage,
    Cancellation,
    CancellationUnavailableError,
    Capability,
    Context,
    InMemoryCancellationStore,
    Receiver,
    TaskCancelledError,
    TaskiqDepends,
    memory_cancellation,
)
from taskq.cancel_token import CancelToken
from taskq.labels import MAX_DELAY_S
from taskq.receiver.interrupts import MessageTask
from taskq.testing import eventually
from taskq_inmemory import InMemoryBroker


@pytest.fixture
def broker(recording_broker: Any) -> Any:
    return recording_broker.with_cancellation(InMemoryCancellationStore())


async def listening(broker: Any, **options: Any) -> tuple[Receiver, asyncio.Task[None]]:
    receiver = Receiver(broker, **options)
    return receiver, asyncio.create_task(receiver.listen())


async def stop(broker: Any, listener: asyncio.Task[None]) -> None:
    broker.close()
    await asyncio.wait_for(listener, 10)


async def test_a_queued_task_never_starts_and_its_message_is_acknowledged(broker, encode):
    ran: list[int] = []

    @broker.task
    async def work() -> None:
        ran.append(1)

    await broker.cancel("t1", reason="not needed")
    await Receiver(broker).callback(broker.ackable(encode(broker, work.task_name)))
    result = await broker.result_backend.get_result("t1")
    assert ran == []
    assert result.is_err
    assert isinstance(result.error, TaskCancelledError)
    assert result.error.task_id == "t1"
    assert result.error.reason == "not needed"
    assert [kind for kind, _ in broker.settled] == ["ack"]


async def test_a_running_async_task_is_stopped(broker, encode):
    started = asyncio.Event()

    @broker.task
    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    _, listener = await listening(broker)
    task = await forever.kiq()
    await asyncio.wait_for(started.wait(), 10)
    await task.cancel("stop it")
    result = await task.wait_result(timeout=10)
    assert isinstance(result.error, TaskCancelledError)
    assert result.error.reason == "stop it"
    assert [kind for kind, _ in broker.settled] == ["ack"]
    await stop(broker, listener)


async def test_a_running_sync_task_sees_it_through_its_context(broker):
    started = threading.Event()

    @broker.task
    def loop(context: Context = TaskiqDepends()) -> None:
        started.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            context.raise_if_cancelled()
            time.sleep(0.01)

    _, listener = await listening(broker)
    task = await loop.kiq()
    await eventually(started.is_set)
    await broker.cancel(task.task_id)
    result = await task.wait_result(timeout=20)
    assert isinstance(result.error, TaskCancelledError)
    await stop(broker, listener)


async def test_a_sync_task_that_does_not_raise_finishes_with_its_value(broker):
    started = threading.Event()

    @broker.task
    def stubborn(context: Context = TaskiqDepends()) -> bool:
        started.set()
        deadline = time.monotonic() + 30
        while not context.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        return context.cancelled

    _, listener = await listening(broker)
    task = await stubborn.kiq()
    await eventually(started.is_set)
    await broker.cancel(task.task_id)
    result = await task.wait_result(timeout=20)
    assert result.is_err is False
    assert result.return_value is True
    await stop(broker, listener)


async def test_a_cancelled_message_is_acknowledged_in_manual_mode_too(broker):
    started = asyncio.Event()

    @broker.task(ack_type="manual")
    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    _, listener = await listening(broker)
    task = await forever.kiq()
    await asyncio.wait_for(started.wait(), 10)
    await task.cancel()
    await task.wait_result(timeout=10)
    await eventually(lambda: [kind for kind, _ in broker.settled] == ["ack"])
    await stop(broker, listener)


async def test_a_task_with_a_timeout_is_cancelled_too(broker):
    started = asyncio.Event()

    @broker.task(timeout=60)
    async def slow() -> None:
        started.set()
        await asyncio.sleep(3600)

    _, listener = await listening(broker)
    task = await slow.kiq()
    await asyncio.wait_for(started.wait(), 10)
    await task.cancel()
    assert isinstance((await task.wait_result(timeout=10)).error, TaskCancelledError)
    await stop(broker, listener)


async def test_other_tasks_run_as_usual(broker):
    @broker.task
    async def add(a: int, b: int) -> int:
        return a + b

    _, listener = await listening(broker)
    await broker.cancel("someone-else")
    task = await add.kiq(2, 3)
    assert (await task.wait_result(timeout=10)).return_value == 5
    await stop(broker, listener)


async def test_a_broker_without_a_store_says_how_to_get_one(recording_broker):
    @recording_broker.task
    async def work() -> None: ...

    with pytest.raises(CancellationUnavailableError, match="with_cancellation"):
        await recording_broker.cancel("t1")
    task = await work.kiq()
    with pytest.raises(CancellationUnavailableError):
        await task.cancel()


async def _run_one_task_with(broker: Any, encode: Any, store: InMemoryCancellationStore) -> Any:
    """Run a task that returns 1 (task id ``t1``) through a receiver with ``store``; its result."""
    broker.with_cancellation(store)

    @broker.task
    async def work() -> int:
        return 1

    await Receiver(broker).callback(broker.ackable(encode(broker, work.task_name)))
    return await broker.result_backend.get_result("t1")


async def test_a_store_that_fails_to_answer_lets_the_task_run(recording_broker, encode, caplog):
    class Broken(InMemoryCancellationStore):
        async def cancellation(self, task_id: str) -> Cancellation | None:
            raise OSError("unreachable")

    result = await _run_one_task_with(recording_broker, encode, Broken())
    assert result.return_value == 1
    assert "cannot check whether it was cancelled (OSError: unreachable)" in caplog.text


async def test_a_subclass_of_the_in_memory_store_is_asked_its_own_way(recording_broker, encode):
    class OwnAnswer(InMemoryCancellationStore):
        async def cancellation(self, task_id: str) -> Cancellation | None:
            return Cancellation(task_id, "its own answer")

    error = (await _run_one_task_with(recording_broker, encode, OwnAnswer())).error
    assert isinstance(error, TaskCancelledError)
    assert error.reason == "its own answer"


# -- the in-memory store -------------------------------------------------------------------------


async def test_the_in_memory_store_keeps_a_cancellation_for_its_ttl():
    store = InMemoryCancellationStore(ttl_s=0.2)
    await store.cancel("a", "why")
    assert await store.cancellation("a") == Cancellation("a", "why")
    assert await store.cancellation("b") is None
    await eventually(lambda: _gone(store, "a"), what="the cancellation expired")
    await store.cancel("b")
    assert "a" not in store._records  # expired records are dropped as new ones come


async def test_a_cancellation_outlasts_the_longest_delay_by_default(monkeypatch):
    now = {"s": 1000.0}
    monkeypatch.setattr(memory_cancellation, "time", SimpleNamespace(monotonic=lambda: now["s"]))
    store = InMemoryCancellationStore()
    await store.cancel("delayed", "not needed")
    now["s"] += MAX_DELAY_S + 3600  # the longest delay, then an hour in the queue
    assert await store.cancellation("delayed") == Cancellation("delayed", "not needed")
    now["s"] += 86_400
    assert await store.cancellation("delayed") is None


async def _gone(store: InMemoryCancellationStore, task_id: str) -> bool:
    return await store.cancellation(task_id) is None


async def test_the_in_memory_store_tells_listeners_of_later_cancellations():
    store = InMemoryCancellationStore()
    await store.cancel("before")
    feed = await store.listen()
    await store.cancel("after", "r")
    assert await asyncio.wait_for(feed.__anext__(), 5) == Cancellation("after", "r")
    await feed.aclose()
    assert not store._listeners


@pytest.mark.parametrize("ttl_s", [0, -1, float("nan"), float("inf")])
def test_a_store_refuses_a_ttl_that_is_not_positive_and_finite(ttl_s: float):
    # a store keeps a record for a time it can write (inf failed each Redis cancel)
    with pytest.raises(ValueError, match="ttl_s"):
        InMemoryCancellationStore(ttl_s=ttl_s)


async def test_the_ack_mode_is_kept_for_tasks_that_are_not_cancelled(broker, encode):
    @broker.task
    async def work() -> None: ...

    data = encode(broker, work.task_name)
    await Receiver(broker, ack_type=AcknowledgeType.WHEN_RECEIVED).callback(broker.ackable(data))
    assert [kind for kind, _ in broker.settled] == ["ack"]


async def test_a_cancelled_run_is_logged_as_information_not_as_an_error(broker, caplog):
    started = asyncio.Event()

    @broker.task
    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    _, listener = await listening(broker)
    task = await forever.kiq()
    await asyncio.wait_for(started.wait(), 10)
    with caplog.at_level(logging.INFO, logger="taskq.receiver"):
        await task.cancel()
        await task.wait_result(timeout=10)
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "was cancelled while running" in caplog.text
    await stop(broker, listener)


async def test_a_cancellation_recorded_while_nobody_listened_is_found_on_listening_again(
    recording_broker, caplog
):
    class FailsOnce(InMemoryCancellationStore):
        failed = False

        async def listen(self) -> Any:
            if not self.failed:
                self.failed = True
                await eventually(lambda: started.is_set())  # the task runs, unheard of
                await self.cancel(task.task_id, "while deaf")  # told to no listener
                raise OSError("the store is down")
            return await super().listen()

    started = asyncio.Event()
    broker = recording_broker.with_cancellation(FailsOnce())

    @broker.task
    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = await forever.kiq()
    _, listener = await listening(broker)
    result = await task.wait_result(timeout=20)
    assert isinstance(result.error, TaskCancelledError)
    assert result.error.reason == "while deaf"
    assert "Cannot listen for cancellations" in caplog.text
    await stop(broker, listener)


async def test_a_token_cancelled_before_the_run_does_not_start_it():
    token = CancelToken("t1")
    token.cancel("early")
    ran: list[int] = []

    async def work() -> None:
        ran.append(1)

    coro = work()
    with pytest.raises(TaskCancelledError):
        await token.run(coro)
    assert ran == []
    assert coro.cr_frame is None  # closed, not left to warn "never awaited"


async def test_an_async_task_that_swallows_the_cancellation_finishes_normally(broker):
    started = asyncio.Event()

    @broker.task
    async def stubborn() -> str:
        started.set()
        with contextlib.suppress(asyncio.CancelledError):  # it declines: the run goes on,
            await asyncio.sleep(3600)  # and what follows must not be cancelled
        await asyncio.sleep(0.01)
        return "declined"

    _, listener = await listening(broker)
    task = await stubborn.kiq()
    await asyncio.wait_for(started.wait(), 10)
    await task.cancel()
    result = await task.wait_result(timeout=10)
    assert result.return_value == "declined"
    assert [kind for kind, _ in broker.settled] == ["ack"]
    await stop(broker, listener)


async def test_a_run_also_cancelled_by_the_stopping_worker_is_not_turned_into_a_result():
    token = CancelToken("t1")
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.sleep(3600)

    async def message() -> None:
        await token.run(work())

    task = MessageTask(message(), loop=asyncio.get_running_loop())
    await started.wait()
    task.cancel()  # the worker stops
    token.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_capability_cancel_is_declared_by_each_broker_that_has_a_store():
    class QueueBroker(AsyncBroker):
        async def kick(self, message: BrokerMessage) -> None: ...

        async def listen(self) -> Any:
            yield b""

    plain, cancelling = QueueBroker(), QueueBroker().with_cancellation(InMemoryCancellationStore())
    assert Capability.CANCEL not in plain.capabilities
    assert Capability.CANCEL in cancelling.capabilities
    assert Capability.CANCEL not in cancelling.with_cancellation(None).capabilities
    memory = InMemoryBroker()
    assert Capability.CANCEL in memory.capabilities  # it comes with a store
    assert Capability.CANCEL not in memory.with_cancellation(None).capabilities
    assert Capability.CANCEL in InMemoryBroker().capabilities  # the class is untouched
