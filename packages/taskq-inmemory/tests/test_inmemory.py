"""The in-memory broker: the real worker path in one process, delay, priority, waiting."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import time
from typing import Any

import pytest

from taskq import (
    AsyncTaskiqTask,
    BatchSendError,
    BrokerMessage,
    Capability,
    ProgressTracker,
    ResultGetError,
    TaskiqDepends,
    TaskiqEvents,
    TaskiqMessage,
    TaskiqMiddleware,
    TaskiqResult,
    TaskiqResultTimeoutError,
    TaskProgress,
    TaskState,
    UnknownTaskError,
)
from taskq.testing import eventually
from taskq_inmemory import InMemoryBroker, InmemoryResultBackend


@pytest.fixture
async def broker():
    broker = InMemoryBroker()
    await broker.startup()
    yield broker
    await broker.shutdown()


async def test_sync_and_async_tasks_round_trip(broker):
    @broker.task
    async def add(a: int, b: int) -> int:
        return a + b

    @broker.task
    def mul(a: int, b: int) -> int:
        return a * b

    assert (await (await add.kiq(5, 3)).wait_result()).return_value == 8
    assert (await (await mul.kiq("4", 7)).wait_result()).return_value == 28


async def test_failures_are_results(broker):
    @broker.task
    async def fail() -> None:
        raise ValueError("nope")

    result = await (await fail.kiq()).wait_result()
    assert result.is_err
    assert isinstance(result.error, ValueError)


async def test_unknown_task_name_fails_at_kiq(broker):
    @broker.task
    async def work() -> None: ...

    with pytest.raises(UnknownTaskError):
        await work.kicker().with_broker(InMemoryBroker()).kiq()


async def test_delay_label_runs_the_task_after_the_delay(broker):
    @broker.task
    async def stamp() -> float:
        return time.monotonic()

    sent = time.monotonic()
    task = await stamp.kicker().with_labels(delay=0.1).kiq()
    assert not await task.is_ready()
    ran_at = (await task.wait_result(timeout=2)).return_value
    assert ran_at - sent >= 0.1


async def test_priority_label_runs_higher_first_under_a_backlog():
    broker = InMemoryBroker(max_async_tasks=1)
    order: list[int] = []

    @broker.task
    async def job(n: int) -> None:
        order.append(n)
        await asyncio.sleep(0)

    await broker.startup()
    for n, priority in ((0, 0), (1, 1), (2, 5), (3, 1)):
        await job.kicker().with_labels(priority=priority).kiq(n)
    await broker.wait_all()
    await broker.shutdown()
    assert order == [2, 1, 3, 0]


async def test_kiq_many_runs_every_call_and_returns_the_handles_in_order(broker):
    @broker.task
    async def add(a: int, b: int) -> int:
        return a + b

    @broker.task
    def mul(a: int, b: int) -> int:
        return a * b

    added = await add.kiq_many((add.call(n, b=1) for n in range(50)), chunk_size=7)
    multiplied = (
        await mul.kicker().with_labels(priority=2).kiq_many([mul.call(n, 3) for n in (1, 2)])
    )
    assert [(await t.wait_result()).return_value for t in added] == [n + 1 for n in range(50)]
    assert [(await t.wait_result()).return_value for t in multiplied] == [3, 6]
    assert Capability.BATCH_SEND in broker.capabilities


async def test_kick_many_honours_priority_and_delay_under_a_backlog():
    broker = InMemoryBroker(max_async_tasks=1)
    order: list[int] = []

    @broker.task
    async def job(n: int) -> None:
        order.append(n)
        await asyncio.sleep(0)

    def message(n: int, **labels: object) -> BrokerMessage:
        return broker.formatter.dumps(TaskiqMessage(str(n), job.task_name, dict(labels), [n]))

    await broker.startup()
    await broker.kick_many(
        [message(0), message(1, priority=1), message(2, delay=0.05), message(3, priority=5)]
    )
    await broker.wait_all()
    await broker.shutdown()
    assert order == [3, 1, 0, 2]


async def test_kick_many_of_an_unknown_task_sends_nothing(broker):
    known = broker.formatter.dumps(TaskiqMessage("a", "known"))
    unknown = broker.formatter.dumps(TaskiqMessage("b", "nobody:registered"))
    broker.register_task(lambda: None, "known")
    with pytest.raises(BatchSendError) as caught:
        await broker.kick_many([known, unknown])
    assert caught.value.sent_ids == ()
    assert caught.value.unsent_ids == ("a", "b")
    assert isinstance(caught.value.__cause__, UnknownTaskError)
    assert len(broker.queue) == 0


async def test_kiq_many_with_await_inplace_runs_each_before_returning():
    broker = InMemoryBroker(await_inplace=True)
    ran: list[int] = []

    @broker.task
    async def job(n: int) -> None:
        ran.append(n)

    async with broker:
        tasks = await job.kiq_many([job.call(1), job.call(2)])
        assert ran == [1, 2]
        assert all([await task.is_ready() for task in tasks])


async def test_wait_all_waits_for_queued_running_and_delayed_messages(broker):
    done: list[int] = []

    @broker.task
    async def job(n: int) -> None:
        await asyncio.sleep(0.01)
        done.append(n)

    for n in range(5):
        await job.kiq(n)
    await job.kicker().with_labels(delay=0.05).kiq(99)
    await broker.wait_all()
    assert sorted(done) == [0, 1, 2, 3, 4, 99]


async def test_await_inplace_runs_before_kiq_returns():
    broker = InMemoryBroker(await_inplace=True)
    ran: list[int] = []

    @broker.task
    async def job() -> None:
        ran.append(1)

    await broker.startup()
    task = await job.kiq()
    assert ran == [1]
    assert await task.is_ready()
    await broker.shutdown()


async def test_kiq_without_startup_still_runs(broker):
    lazy = InMemoryBroker()

    @lazy.task
    async def job() -> int:
        return 3

    assert (await (await job.kiq()).wait_result(timeout=2)).return_value == 3
    await lazy.shutdown()


async def test_startup_runs_client_and_worker_events():
    broker = InMemoryBroker()
    fired: list[str] = []
    for event in TaskiqEvents:
        broker.add_event_handler(event, lambda state, e=event: fired.append(e.value))
    await broker.startup()
    await broker.shutdown()
    assert fired == ["CLIENT_STARTUP", "WORKER_STARTUP", "WORKER_SHUTDOWN", "CLIENT_SHUTDOWN"]


async def test_shutdown_runs_what_is_ready_and_drops_undue_delayed(caplog):
    broker = InMemoryBroker()
    done: list[int] = []

    @broker.task
    async def job(n: int) -> None:
        done.append(n)

    await broker.startup()
    for n in range(3):
        await job.kiq(n)
    await job.kicker().with_labels(delay=60).kiq(99)
    await broker.shutdown()
    assert sorted(done) == [0, 1, 2]
    assert "dropped 1 delayed" in caplog.text


async def test_worker_mode_leaves_messages_to_listen():
    broker = InMemoryBroker()
    broker.is_worker_process = True
    await broker.startup()
    await broker.kick(broker.formatter.dumps(__import__("taskq").TaskiqMessage("i", "any:name")))
    received = []

    async def consume() -> None:
        async for data in broker.listen():
            received.append(data)

    consumer = asyncio.create_task(consume())
    await eventually(lambda: received)
    await broker.shutdown()
    await asyncio.wait_for(consumer, 1)
    assert len(received) == 1


async def test_many_listeners_share_messages_each_once():
    broker = InMemoryBroker()
    broker.is_worker_process = True
    await broker.startup()
    got: list[list[bytes]] = [[], [], []]

    async def consume(bucket: list[bytes]) -> None:
        async for data in broker.listen():
            bucket.append(data)
            await asyncio.sleep(0)

    consumers = [asyncio.create_task(consume(b)) for b in got]
    for n in range(300):
        await broker.kick(broker.formatter.dumps(__import__("taskq").TaskiqMessage(str(n), "x")))
    await eventually(lambda: sum(map(len, got)) >= 300, what="every message consumed")
    await broker.shutdown()
    await asyncio.wait_for(asyncio.gather(*consumers), 1)
    everything = [d for bucket in got for d in bucket]
    assert len(everything) == len(set(everything)) == 300
    assert all(bucket for bucket in got)
    assert Capability.LOAD_BALANCING in broker.capabilities


async def test_progress_is_reported_and_read(broker):
    @broker.task
    async def long(tracker: ProgressTracker[int] = TaskiqDepends()) -> None:
        await tracker.set_progress(TaskState.STARTED, 50)
        assert (await tracker.get_progress()).meta == 50

    task = await long.kiq()
    await task.wait_result(timeout=2)
    progress = await task.get_progress()
    assert progress.state is TaskState.STARTED
    assert progress.meta == 50


async def test_result_backend_keeps_the_latest_results_and_wakes_waiters():
    backend = InmemoryResultBackend(max_stored_results=2)
    from taskq import TaskiqResult

    waiter = asyncio.create_task(backend.wait_ready("c", None, 10))
    await asyncio.sleep(0)
    for task_id in "abc":
        await backend.set_result(
            task_id, TaskiqResult(is_err=False, return_value=task_id, execution_time=0)
        )
    assert await asyncio.wait_for(waiter, 1) is True
    assert not await backend.is_result_ready("a")
    with pytest.raises(ResultGetError):
        await backend.get_result("a")
    assert await backend.wait_ready("missing", 0.01, 10) is False
    assert backend._waiters == {}
    with pytest.raises(ValueError, match="max_stored_results"):
        InmemoryResultBackend(0)


async def test_listen_delivers_every_message_in_order_even_empty_ones():
    broker = InMemoryBroker()
    broker.is_worker_process = True
    await broker.startup()
    for data in (b"", b"a", b"", b"b"):
        broker.queue.put(data)
    await broker.shutdown()  # closes the queue: listen yields what is ready, then stops
    assert [data async for data in broker.listen()] == [b"", b"a", b"", b"b"]


def result(value: int) -> TaskiqResult[int]:
    return TaskiqResult(is_err=False, return_value=value, execution_time=0)


async def test_results_expire_after_the_ttl_one_day_by_default():
    assert InmemoryResultBackend().result_ttl == 86_400
    backend = InmemoryResultBackend(max_stored_results=-1, result_ttl=0.05)
    await backend.set_result("short", result(1))
    await backend.set_progress("short", TaskProgress(TaskState.STARTED))
    assert await backend.is_result_ready("short")
    backend.result_ttl = None  # applies to what is stored from now on
    await backend.set_result("kept", result(2))

    async def expired() -> bool:
        return not await backend.is_result_ready("short")

    await eventually(expired)
    with pytest.raises(ResultGetError, match="expired"):
        await backend.get_result("short")
    assert await backend.get_progress("short") is None
    assert (await backend.get_result("kept")).return_value == 2


async def test_expired_results_are_dropped_as_new_ones_come_and_the_count_still_bounds():
    from taskq import TaskiqResult

    backend = InmemoryResultBackend(max_stored_results=3, result_ttl=0.05)
    for n in range(10):
        await backend.set_result(
            f"old-{n}", TaskiqResult(is_err=False, return_value=n, execution_time=0)
        )
    assert list(backend.results) == ["old-7", "old-8", "old-9"]
    await eventually(lambda: _all_expired(backend))
    backend.result_ttl = 60
    await backend.set_result("new", result(0))
    assert list(backend.results) == ["new"]
    with pytest.raises(ValueError, match="result_ttl"):
        InmemoryResultBackend(result_ttl=0)


def _all_expired(backend: InmemoryResultBackend) -> bool:
    return all(
        deadline <= time.monotonic()
        for deadline in backend._expires_at[id(backend.results)].values()
    )


async def test_wait_result_reads_a_stored_result_without_waiting_and_casts_it():
    backend: InmemoryResultBackend[Any] = InmemoryResultBackend(result_ttl=0.05)
    await backend.set_result("done", result(7))
    handle: AsyncTaskiqTask[float] = AsyncTaskiqTask("done", backend, return_type=float)
    assert backend.result_now("done") is not None  # held here: read without a coroutine
    value = (await handle.wait_result()).return_value
    assert type(value) is float  # cast to the annotation, as get_result casts
    assert value == 7
    assert backend.result_now("missing") is None

    async def expired() -> bool:
        return backend.result_now("done") is None

    await eventually(expired)  # an expired result is not served either
    with pytest.raises(TaskiqResultTimeoutError):
        await handle.wait_result(timeout=0.01)


async def test_a_subclass_reading_results_its_own_way_sees_every_read():
    reads: list[str] = []

    class Counting(InmemoryResultBackend[Any]):
        async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[Any]:
            reads.append(task_id)
            return await super().get_result(task_id, with_logs)

    counting = Counting()
    await counting.set_result("a", result(1))
    assert counting.result_now("a") is None
    assert (await AsyncTaskiqTask("a", counting).wait_result()).return_value == 1

    patched = InmemoryResultBackend[Any]()
    await patched.set_result("b", result(2))
    original = patched.get_result

    async def stand_in(task_id: str, with_logs: bool = True) -> TaskiqResult[Any]:
        reads.append(task_id)
        return await original(task_id, with_logs)

    patched.get_result = stand_in  # type: ignore[method-assign]
    assert (await AsyncTaskiqTask("b", patched).wait_result()).return_value == 2
    assert reads == ["a", "b"]


def test_building_a_broker_leaves_dependency_injection_unimported() -> None:
    """``taskq status`` builds the app's broker: that must not pay for taskiq-dependencies,
    which imports FastAPI when it is installed (most of the command's start-up)."""
    code = (
        "import sys\n"
        "from taskq_inmemory import InMemoryBroker\n"
        "broker = InMemoryBroker()\n"
        "@broker.task\n"
        "async def add(a: int, b: int) -> int:\n"
        "    return a + b\n"
        "print(sorted(m for m in ('taskiq_dependencies', 'fastapi') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


async def test_max_async_tasks_bounds_the_tasks_sent_to_an_idle_broker():
    broker = InMemoryBroker(max_async_tasks=3)
    running = peak = 0
    release = asyncio.Event()

    @broker.task
    async def hold() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    await broker.startup()
    handles = [await hold.kiq() for _ in range(10)]
    await eventually(lambda: running == 3)
    release.set()
    for handle in handles:
        assert not (await handle.wait_result(timeout=2)).is_err
    await broker.shutdown()
    assert peak == 3


async def test_a_long_chain_of_tasks_sending_tasks_runs_every_link():
    broker = InMemoryBroker(max_async_tasks=5_000, max_stored_results=-1)  # room for all
    handles = []

    @broker.task
    async def link(left: int) -> int:
        if left:
            handles.append(await link.kiq(left - 1))
        return left

    await broker.startup()
    handles.append(await link.kiq(3_000))
    await eventually(lambda: len(handles) == 3_001)
    results = [await handle.wait_result(timeout=5) for handle in handles]
    await broker.shutdown()
    assert sorted(result.return_value for result in results) == list(range(3_001))


async def test_kiq_and_its_post_send_hooks_finish_before_the_task_starts():
    """Middlewares see one message in the documented order, on every Python (3.12+ could
    start a handed-over task inside ``kiq``, before ``post_send``)."""
    seen: list[str] = []

    class Recording(TaskiqMiddleware):
        def post_send(self, message: TaskiqMessage) -> None:
            seen.append("post_send")

        def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
            seen.append("pre_execute")
            return message

    broker = InMemoryBroker().with_middlewares(Recording())

    @broker.task
    async def noop() -> None:
        seen.append("run")

    await broker.startup()
    for _ in range(3):
        await (await noop.kiq()).wait_result(timeout=2)
    await broker.shutdown()
    assert seen == ["post_send", "pre_execute", "run"] * 3


sender_only: contextvars.ContextVar[str] = contextvars.ContextVar("sender_only", default="unset")


async def test_a_task_does_not_see_the_senders_context_variables(broker):
    @broker.task
    async def read() -> str:
        return sender_only.get()

    sender_only.set("sender")
    results = [await (await read.kiq()).wait_result(timeout=2) for _ in range(3)]
    assert [result.return_value for result in results] == ["unset"] * 3
