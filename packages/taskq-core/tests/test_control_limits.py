"""Rate and concurrency limits in one process: the spec, the limiter, the receiver step."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from taskq import BrokerMessage, Capability
from taskq.control.limits import RateLimit, TaskLimits
from taskq.control.memory_limiter import MemoryLimiter
from taskq.exceptions import (
    InvalidTaskLimitError,
    SharedStoreRequiredError,
    TaskArgumentsError,
    TaskiqError,
)
from taskq.testing import eventually
from taskq_inmemory import InMemoryBroker

from .conftest import PlainQueueBroker


@pytest.mark.parametrize(
    ("spec", "count", "period_s"),
    [
        ("100/s", 100, 1.0),
        ("5/m", 5, 60.0),
        ("2/h", 2, 3600.0),
        (" 7 / Minute ", 7, 60.0),
        ("3/seconds", 3, 1.0),
        ("1/hour", 1, 3600.0),
    ],
)
def test_rate_specs_read_per_second_minute_and_hour(spec: str, count: int, period_s: float):
    assert RateLimit.parse(spec) == RateLimit(count, period_s)


@pytest.mark.parametrize("spec", ["100", "0/s", "-1/s", "10/d", "1.5/s", "/s", 100, None, "1/s/s"])
def test_a_bad_rate_spec_is_refused_with_a_typed_error(spec: Any):
    with pytest.raises(InvalidTaskLimitError, match="rate_limit"):
        RateLimit.parse(spec)


@pytest.mark.parametrize(
    "options",
    [
        {"rate_limit": "ten per second"},
        {"max_concurrency": 0},
        {"max_concurrency": True},
        {"max_concurrency": "5"},
        {"limit_key": "customer_id"},
        {"limit_key": lambda **_: 1},  # a key of nothing
    ],
)
def test_bad_task_options_fail_when_the_task_is_registered(options: dict[str, Any]):
    broker = InMemoryBroker()
    with pytest.raises(InvalidTaskLimitError):
        broker.task(**options)(lambda: None)


def test_limit_options_are_settings_of_the_task_not_labels():
    broker = InMemoryBroker()

    @broker.task(rate_limit="3/m", max_concurrency=2, retry_on_error=True)
    def work() -> None: ...

    assert work.labels == {"retry_on_error": True}
    assert work.limits == TaskLimits(RateLimit(3, 60.0), 2, None)


def test_plain_tasks_have_no_limits():
    broker = InMemoryBroker()

    @broker.task
    def plain() -> None: ...

    assert plain.limits is None


def test_the_limit_key_gets_the_arguments_by_name_however_they_were_passed():
    def bill(customer_id: int, amount: int, **extra: object) -> None: ...

    labels: dict[str, Any] = {
        "rate_limit": "1/s",
        "limit_key": lambda customer_id, **_: customer_id,
    }
    limits = TaskLimits.take_from(labels, bill)
    assert limits is not None
    assert limits.key("t", [7, 100], {}) == "t:7"
    assert limits.key("t", [], {"customer_id": 7, "amount": 1, "note": "x"}) == "t:7"
    assert TaskLimits(RateLimit(1, 1.0)).key("t", [1], {}) == "t"
    with pytest.raises(TaskArgumentsError, match="limit_key"):
        limits.key("t", [], {"amount": 1})  # no customer_id
    with pytest.raises(TaskArgumentsError, match="limit_key"):
        limits.key("t", [1, 2, 3], {})  # does not fit the task


async def test_memory_limiter_counts_starts_in_a_sliding_window():
    limiter, rate = MemoryLimiter(), RateLimit(2, 0.5)
    assert await limiter.acquire("k", "a", rate, None) == 0.0
    assert await limiter.acquire("k", "b", rate, None) == 0.0
    wait_s = await limiter.acquire("k", "c", rate, None)
    assert 0 < wait_s <= 0.5
    assert await limiter.acquire("other", "c", rate, None) == 0.0  # keys are apart
    await asyncio.sleep(wait_s)
    assert await limiter.acquire("k", "c", rate, None) == 0.0


async def test_memory_limiter_keeps_a_place_taken_again_under_its_token_until_both_end():
    # a retry under the task id starts while the failed run still ends: the failed run
    # giving its place back must not free the retry's
    limiter = MemoryLimiter()
    assert await limiter.acquire("k", "a", None, 2) == 0.0
    assert await limiter.acquire("k", "a", None, 2) == 0.0  # the retry
    await limiter.release("k", "a")  # the failed run ends
    assert await limiter.acquire("k", "b", None, 2) == 0.0
    assert await limiter.acquire("k", "c", None, 2) > 0, "3 runs with max_concurrency=2"
    await limiter.release("k", "a")  # the retry ends
    assert await limiter.acquire("k", "c", None, 2) == 0.0


async def test_memory_limiter_wakes_a_waiter_when_a_place_is_released():
    limiter = MemoryLimiter()
    assert await limiter.acquire("k", "a", None, 1) == 0.0
    assert await limiter.acquire("k", "b", None, 1) > 0
    waiting = asyncio.ensure_future(limiter.wait("k", 30))
    await asyncio.sleep(0)
    await limiter.release("k", "a")
    await asyncio.wait_for(waiting, 5)
    assert await limiter.acquire("k", "b", None, 1) == 0.0


async def test_a_rate_limited_task_runs_every_message_within_its_rate():
    broker = InMemoryBroker(max_stored_results=-1)
    starts: list[float] = []

    @broker.task(rate_limit="20/s")
    async def tick(n: int) -> int:
        starts.append(time.monotonic())
        return n

    sent = time.monotonic()
    async with broker:
        tasks = [await tick.kiq(n) for n in range(50)]
        results = [await task.wait_result(timeout=30) for task in tasks]
    # every message ran once, under its own task id (the deferred ones too)
    assert [result.return_value for result in results] == list(range(50))
    assert len(starts) == 50
    starts.sort()
    # each start follows its decision: the 21st waited a window, the 41st two
    assert starts[20] - sent >= 1.0
    assert starts[40] - sent >= 2.0


async def test_max_concurrency_bounds_the_runs_at_once():
    broker = InMemoryBroker(max_stored_results=-1, max_async_tasks=30)
    running = peak = 0

    @broker.task(max_concurrency=3)
    async def slow() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    async with broker:
        tasks = [await slow.kiq() for _ in range(30)]
        for task in tasks:
            assert not (await task.wait_result(timeout=30)).is_err
    assert peak == 3


async def test_limits_apply_per_key_one_customer_waits_and_the_others_do_not():
    broker = InMemoryBroker(max_stored_results=-1)
    ran: list[str] = []

    @broker.task(rate_limit="1/m", limit_key=lambda customer_id: customer_id)
    async def bill(customer_id: str) -> None:
        ran.append(customer_id)

    async with broker:
        for customer in ["a", "a", "b", "c"]:
            await bill.kiq(customer)
        await eventually(lambda: len(ran) == 3)
        # the second "a" went back to the queue, due when the minute's window frees a place
        await eventually(lambda: len(broker.queue) == 1)
        assert (broker.queue.seconds_until_due() or 0) > 50
        assert sorted(ran) == ["a", "b", "c"]
        broker.queue.close()  # its deferred message is dropped, not run


async def test_without_delay_a_run_waits_in_the_receiver_and_nothing_is_sent_again():
    from taskq import Receiver

    broker = PlainQueueBroker()
    starts: list[float] = []

    @broker.task(rate_limit="2/s")
    async def tick() -> None:
        starts.append(time.monotonic())

    sent = 0
    kick = broker.kick

    async def counting_kick(message: BrokerMessage) -> None:
        nonlocal sent
        sent += 1
        await kick(message)

    broker.kick = counting_kick  # type: ignore[method-assign]
    for _ in range(4):
        await tick.kiq()
    receiver = Receiver(broker)
    listened = time.monotonic()
    listening = asyncio.ensure_future(receiver.listen())
    await eventually(lambda: len(starts) == 4, timeout=20)
    listening.cancel()
    assert sent == 4
    assert sorted(starts)[2] - listened >= 1.0  # the third waited a window


class _ManyProcessBroker(PlainQueueBroker):
    capabilities = frozenset({Capability.CROSS_PROCESS})


async def test_a_cross_process_broker_without_a_limiter_fails_the_task_saying_what_to_do():
    from taskq import Receiver
    from taskq_inmemory import InmemoryResultBackend

    broker = _ManyProcessBroker().with_result_backend(InmemoryResultBackend())

    @broker.task(max_concurrency=1)
    async def limited() -> None: ...

    task = await limited.kiq()
    await Receiver(broker).callback(await broker.queue.get())
    result = await task.get_result()
    assert isinstance(result.error, SharedStoreRequiredError)
    assert "with_limiter" in str(result.error)


async def test_a_limit_key_failing_on_the_arguments_fails_the_run_and_the_worker_goes_on():
    broker = InMemoryBroker(max_stored_results=-1)

    @broker.task(max_concurrency=1, limit_key=lambda customer_id: customer_id)
    async def bill(**kwargs: Any) -> str:
        return "billed"

    async with broker:
        bad = await bill.kiq(amount=3)  # no customer_id
        good = await bill.kiq(customer_id=1)
        failed = await bad.wait_result(timeout=10)
        assert isinstance(failed.error, TaskArgumentsError)
        assert "limit_key" in str(failed.error)
        assert (await good.wait_result(timeout=10)).return_value == "billed"


class _ReleaseFails(MemoryLimiter):
    async def release(self, key: str, token: str) -> None:
        raise ConnectionError("the limiter's server went away")


async def test_a_place_that_cannot_be_given_back_is_logged_and_the_result_kept(caplog):
    broker = InMemoryBroker(max_stored_results=-1).with_limiter(_ReleaseFails())

    @broker.task(max_concurrency=2)
    async def work() -> int:
        return 7

    async with broker:
        task = await work.kiq()
        assert (await task.wait_result(timeout=10)).return_value == 7
    assert "frees itself when its lease ends" in caplog.text


class _StoreDown(MemoryLimiter):
    down = True

    async def acquire(self, *args: Any) -> float:
        if self.down:
            raise TaskiqError("the limiter's server does not answer")
        return await super().acquire(*args)


async def test_a_limiter_that_cannot_answer_hands_the_message_back_with_one_line(
    recording_broker: Any, encode: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from taskq import Receiver

    limiter = _StoreDown()
    broker = recording_broker.with_limiter(limiter)
    ran: list[int] = []

    @broker.task(task_name="limited", max_concurrency=1)
    async def limited(n: int) -> None:
        ran.append(n)

    receiver = Receiver(broker)
    first = encode(broker, "limited", 1)
    await receiver.callback(broker.ackable(first))
    assert broker.settled == [("release", first)]  # back to the broker, to run later
    assert ran == []
    [line] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "its limits could not be checked" in line.getMessage()
    assert "does not answer" in line.getMessage()
    assert line.exc_info is None  # one line, no traceback per message
    limiter.down = False
    second = encode(broker, "limited", 2, task_id="t2")
    await receiver.callback(broker.ackable(second))
    assert ran == [2]


async def test_memory_limiter_forgets_keys_whose_window_is_over():
    limiter, rate = MemoryLimiter(), RateLimit(1, 0.01)
    for n in range(200):
        assert await limiter.acquire(f"customer-{n}", "t", rate, 1) == 0.0
        await limiter.release(f"customer-{n}", "t")
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.02)
    await limiter.acquire("last", "t", rate, None)  # a new key may sweep the idle ones
    assert len(limiter._starts) < 200
    assert not limiter._running
