"""Messages ready together run in turn in one asyncio task: each still as if in its own task."""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from typing import Any

import pytest

from taskq import TaskCancelledError, TaskiqMessage
from taskq.receiver import Receiver
from taskq_inmemory import InMemoryBroker

seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="fresh")


@pytest.fixture
async def broker():
    broker = InMemoryBroker()
    broker.is_worker_process = True  # messages are run by the receiver of each test
    await broker.startup()
    yield broker
    await broker.shutdown()


async def run_ready(broker: InMemoryBroker, messages: list[TaskiqMessage]) -> None:
    """Run ``messages``, all ready at once, through a receiver's consume loop, to the end."""
    ready = deque(messages)

    async def arriving() -> Any:
        while ready:
            yield ready.popleft()

    def take_now() -> TaskiqMessage | None:
        return ready.popleft() if ready else None

    await Receiver(broker).listen(messages=arriving(), take_now=take_now)


def message(name: str, task_id: str, *args: Any) -> TaskiqMessage:
    return TaskiqMessage(task_id, name, {}, list(args), {})


async def return_values(broker: InMemoryBroker, ids: list[str]) -> list[Any]:
    results = [await broker.result_backend.get_result(task_id) for task_id in ids]
    assert [result.error for result in results] == [None] * len(ids)
    return [result.return_value for result in results]


async def test_each_message_starts_in_a_fresh_context(broker):
    @broker.task
    async def mark(n: int) -> str:
        before = seen.get()
        seen.set(f"set by {n}")
        return before

    ids = [f"t{n}" for n in range(40)]
    await run_ready(broker, [message(mark.task_name, i, n) for n, i in enumerate(ids)])

    assert await return_values(broker, ids) == ["fresh"] * 40


async def test_a_message_that_waits_has_its_task_to_itself(broker):
    """Cancelling the task of a waiting message (as ``asyncio.timeout`` does) reaches it alone."""

    @broker.task
    async def stopped_by_its_own_timer() -> str:
        asyncio.get_running_loop().call_later(0.01, asyncio.current_task().cancel)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "stopped"
        return "not stopped"

    @broker.task
    async def waits(n: int) -> int:
        await asyncio.sleep(0.05)
        return n

    ids = ["timer", *(f"w{n}" for n in range(10))]
    batch = [message(stopped_by_its_own_timer.task_name, "timer")]
    batch += [message(waits.task_name, f"w{n}", n) for n in range(10)]
    await run_ready(broker, batch)

    assert await return_values(broker, ids) == ["stopped", *range(10)]


async def test_a_message_cancelling_its_task_and_returning_does_not_touch_the_next(broker):
    @broker.task
    async def cancels_its_task() -> int:
        asyncio.current_task().cancel()  # and returns without waiting
        return 1

    @broker.task
    async def waits(n: int) -> int:
        await asyncio.sleep(0.01)
        return n

    ids = ["self", "w2", "w3"]
    batch = [message(cancels_its_task.task_name, "self")]
    batch += [message(waits.task_name, "w2", 2), message(waits.task_name, "w3", 3)]
    await run_ready(broker, batch)

    assert await return_values(broker, ids) == [1, 2, 3]


async def test_the_consume_loop_ends_only_once_every_message_taken_ran(broker):
    """Each message waits longer than the one before: they run in tasks started one by one."""

    @broker.task
    async def waits(n: int) -> int:
        await asyncio.sleep(0.02 * n)
        return n

    ids = [f"w{n}" for n in range(1, 6)]
    await run_ready(broker, [message(waits.task_name, f"w{n}", n) for n in range(1, 6)])

    assert await return_values(broker, ids) == [1, 2, 3, 4, 5]


async def test_a_cancellation_stops_only_its_message(broker):
    started = asyncio.Event()

    @broker.task
    async def long_one() -> None:
        started.set()
        await asyncio.sleep(5)

    @broker.task
    async def waits(n: int) -> int:
        await started.wait()
        await asyncio.sleep(0.05)
        return n

    async def cancel_once_started() -> None:
        await started.wait()
        await broker.cancel("long", "not needed")

    batch = [message(waits.task_name, "w0", 0), message(long_one.task_name, "long")]
    batch += [message(waits.task_name, f"w{n}", n) for n in range(1, 4)]
    await asyncio.gather(run_ready(broker, batch), cancel_once_started())

    cancelled = await broker.result_backend.get_result("long")
    assert isinstance(cancelled.error, TaskCancelledError)
    assert cancelled.error.reason == "not needed"
    assert await return_values(broker, [f"w{n}" for n in range(4)]) == [0, 1, 2, 3]
