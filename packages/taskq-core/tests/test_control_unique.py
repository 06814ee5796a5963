"""Unique tasks in one process: the default key, the store, kiq and the release."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import json
import subprocess
import sys
import tracemalloc
from typing import Any

import pytest

from taskq import (
    AsyncBroker,
    BrokerMessage,
    Capability,
    TaskCancelledError,
    TaskiqMessage,
    TaskiqMiddleware,
)
from taskq.abc.unique_store import DIGEST_KEY_PREFIX, MAX_STORED_KEY_BYTES, stored_key
from taskq.control.memory_unique import MemoryUniqueStore
from taskq.control.stores import unique_store_of
from taskq.control.unique import UNIQUE_LABEL, default_key
from taskq.exceptions import SharedStoreRequiredError, UniqueKeyError
from taskq.task_events import MAX_QUOTED_CHARS, quoted
from taskq.testing import eventually
from taskq_inmemory import InMemoryBroker

from .conftest import PlainQueueBroker


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_the_default_key_is_canonical_in_the_order_of_keyword_arguments():
    assert default_key("t", (1,), {"a": 1, "b": {"x": 1, "y": 2}}) == default_key(
        "t", (1,), {"b": {"y": 2, "x": 1}, "a": 1}
    )
    assert default_key("t", (1,), {}) != default_key("t", (2,), {})
    assert default_key("t", (1,), {}) != default_key("u", (1,), {})
    assert default_key("t", ({3, 1, 2},), {}) == default_key("t", ({2, 1, 3},), {})
    assert default_key("t", (Point(1, 2), datetime.date(2026, 1, 1)), {}).startswith("t:")
    assert default_key("t", (decimal.Decimal("1.5"),), {}) == default_key("t", ("1.5",), {})


def test_a_worker_loads_no_module_only_the_default_key_needs():
    code = (
        "import sys, taskq, taskq.receiver, taskq.cli.worker_process\n"
        "print(sorted({'hashlib', 'decimal'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_argument_without_a_canonical_form_asks_for_a_key():
    with pytest.raises(UniqueKeyError, match="with_unique"):
        default_key("t", (object(),), {})


@pytest.mark.parametrize(
    ("key", "ttl"),
    [(None, 0), (None, -1), ("", 10), (None, float("nan")), (None, float("inf"))],
)
def test_bad_unique_options_are_refused(key: Any, ttl: Any):
    broker = InMemoryBroker()

    @broker.task
    def work() -> None: ...

    with pytest.raises(ValueError, match="unique task"):
        work.kicker().with_unique(key=key, ttl=ttl)


async def test_memory_store_gives_a_key_to_one_task_until_released_or_expired():
    store = MemoryUniqueStore()
    assert await store.claim("k", "a", 60) is None
    assert await store.claim("k", "b", 60) == "a"
    await store.release("k", "b")  # not the holder: nothing happens
    assert await store.claim("k", "b", 60) == "a"
    await store.release("k", "a")
    assert await store.claim("k", "b", 0.05) is None
    await asyncio.sleep(0.06)
    assert await store.claim("k", "c", 60) is None


def test_a_long_key_is_stored_as_its_digest_and_a_short_one_as_it_is():
    start = "k" * 5_000_000
    first, second = stored_key(start + "1"), stored_key(start + "2")
    assert first.startswith(DIGEST_KEY_PREFIX)
    assert len(first) == len(DIGEST_KEY_PREFIX) + 64
    assert first != second
    assert stored_key(start + "1") == first
    assert stored_key("k" * MAX_STORED_KEY_BYTES) == "k" * MAX_STORED_KEY_BYTES
    assert stored_key("é" * 101) != "é" * 101  # 202 bytes of UTF-8
    # a short key that looks like a digest is digested too: it stays apart from a long key
    assert stored_key(first) not in (first, second)


# a 5 MB key stayed in the store, whole, until its task ended or its TTL (an hour by default)
async def test_memory_store_keeps_a_long_key_in_little_memory():
    store = MemoryUniqueStore()
    tracemalloc.start()
    try:
        key = "k" * 5_000_000
        assert await store.claim(key, "a", 60) is None
        del key
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 100_000, held
    assert await store.claim("k" * 5_000_000, "b", 60) == "a"
    assert await store.claim("k" * 4_999_999 + "j", "b", 60) is None


def test_a_key_that_is_not_text_is_refused_in_a_short_message():
    broker = InMemoryBroker()

    @broker.task
    def work() -> None: ...

    with pytest.raises(ValueError, match="unique task") as refused:
        work.kicker().with_unique(key=b"k" * 5_000_000)  # type: ignore[arg-type]
    assert len(str(refused.value)) < 3 * MAX_QUOTED_CHARS


async def test_a_second_kiq_while_the_first_is_queued_returns_the_first_handle():
    broker = InMemoryBroker(max_stored_results=-1)
    runs: list[int] = []
    gate = asyncio.Event()

    @broker.task
    async def sync_account(account: int) -> int:
        await gate.wait()
        runs.append(account)
        return account

    async with broker:
        first = await sync_account.kicker().with_unique().kiq(1)
        second = await sync_account.kicker().with_unique().kiq(1)
        other = await sync_account.kicker().with_unique().kiq(2)
        assert second.task_id == first.task_id
        assert other.task_id != first.task_id
        gate.set()
        assert (await second.wait_result(timeout=10)).return_value == 1
        await other.wait_result(timeout=10)
        # the result is stored and the key freed: the next kiq sends a new task
        third = await eventually(lambda: sync_account.kicker().with_unique().kiq(1))
        assert third.task_id != first.task_id
        await third.wait_result(timeout=10)
    assert sorted(runs) == [1, 1, 2]


async def test_an_explicit_key_makes_different_arguments_one_task():
    broker = InMemoryBroker(max_stored_results=-1)
    gate = asyncio.Event()

    @broker.task
    async def report(day: str) -> str:
        await gate.wait()
        return day

    async with broker:
        first = await report.kicker().with_unique(key="daily-report").kiq("mon")
        second = await report.kicker().with_unique(key="daily-report").kiq("tue")
        assert second.task_id == first.task_id
        assert first.task_id in str(await broker.unique_store.claim("daily-report", "x", 1))
        gate.set()
        assert (await second.wait_result(timeout=10)).return_value == "mon"


async def test_the_key_travels_in_a_label_and_a_plain_kiq_is_not_unique():
    broker = InMemoryBroker(max_stored_results=-1)

    @broker.task
    async def echo(x: int) -> dict[str, Any]:
        return {}

    async with broker:
        unique = await echo.kicker().with_unique(key="k").kiq(1)
        result = await unique.wait_result(timeout=10)
        assert result.labels[UNIQUE_LABEL] == "k"
        plain = [await echo.kiq(1), await echo.kiq(1)]
        assert plain[0].task_id != plain[1].task_id


async def test_a_cross_process_broker_without_a_store_refuses_a_unique_kiq():
    class ManyProcessBroker(AsyncBroker):
        capabilities = frozenset({Capability.CROSS_PROCESS})

        async def kick(self, message: BrokerMessage) -> None:
            raise AssertionError("nothing may be sent")

        async def listen(self) -> Any:
            yield b""

    broker = ManyProcessBroker()

    @broker.task
    async def work() -> None: ...

    with pytest.raises(SharedStoreRequiredError, match="with_unique_store"):
        await work.kicker().with_unique().kiq()


async def test_a_unique_task_that_cannot_be_sent_frees_its_key():
    from taskq.exceptions import SendTaskError

    broker = InMemoryBroker(max_stored_results=-1)

    @broker.task
    async def job() -> None: ...

    async with broker:
        with pytest.raises(SendTaskError):  # an unsupported label: nothing is sent
            await job.kicker().with_labels(delay="soon").with_unique(key="k").kiq()
        assert await broker.unique_store.claim("k", "next", 60) is None


class FailingPreExecute(TaskiqMiddleware):
    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        raise RuntimeError("refused before the run")


async def _key_is_free(broker: AsyncBroker, key: str) -> bool:
    store = broker.unique_store
    assert store is not None
    if await store.claim(key, "probe", 60) is None:
        await store.release(key, "probe")
        return True
    return False


async def test_a_task_refused_by_a_pre_execute_middleware_frees_its_key():
    broker = InMemoryBroker(max_stored_results=-1).with_middlewares(FailingPreExecute())

    @broker.task
    async def job() -> None: ...

    async with broker:
        task = await job.kicker().with_unique(key="k").kiq()
        assert (await task.wait_result(timeout=10)).is_err
        await eventually(lambda: _key_is_free(broker, "k"))


async def test_an_undecodable_message_frees_the_key_its_labels_name():
    broker = InMemoryBroker(max_stored_results=-1)

    @broker.task(task_name="job")
    async def job(n: int) -> None: ...

    async with broker:
        assert await unique_store_of(broker).claim("k", "t1", 60) is None
        data = {"task_id": "t1", "task_name": "job", "labels": {UNIQUE_LABEL: "k"}, "args": 5}
        await broker.kick(BrokerMessage("t1", "job", json.dumps(data).encode(), {}))
        await eventually(lambda: _key_is_free(broker, "k"))


async def test_a_task_cancelled_before_it_starts_frees_its_key():
    broker = InMemoryBroker(max_stored_results=-1)

    @broker.task
    async def job() -> None: ...

    async with broker:
        await broker.cancel("t1")  # recorded before the task is sent: it never starts
        task = await job.kicker().with_task_id("t1").with_unique(key="k").kiq()
        assert isinstance((await task.wait_result(timeout=10)).error, TaskCancelledError)
        await eventually(lambda: _key_is_free(broker, "k"))


# the warning quoted the whole key: a 5 MB key (a client's with_unique(key=...)) made a 5 MB line
@pytest.mark.parametrize("key", ["k", "k" * 5_000_000], ids=["short", "huge"])
async def test_a_worker_without_a_store_runs_a_unique_task_and_warns_in_one_line(caplog, key):
    from taskq import AckableMessage, Receiver
    from taskq_inmemory import InmemoryResultBackend

    class ManyProcessBroker(AsyncBroker):
        capabilities = frozenset({Capability.CROSS_PROCESS})

        async def kick(self, message: BrokerMessage) -> None:
            raise AssertionError("nothing is sent")

        async def listen(self) -> Any:
            yield b""

    broker = ManyProcessBroker().with_result_backend(InmemoryResultBackend())

    @broker.task
    async def work() -> str:
        return "done"

    message = broker.formatter.dumps(
        TaskiqMessage(task_id="t1", task_name=work.task_name, labels={UNIQUE_LABEL: key})
    )
    acks: list[str] = []
    with caplog.at_level("DEBUG", logger="taskq"):
        await Receiver(broker).callback(AckableMessage(message.message, lambda: acks.append("t1")))
    result = await broker.result_backend.get_result("t1")
    assert result.return_value == "done"
    assert acks == ["t1"]
    about_the_key = [record for record in caplog.records if "unique key" in record.getMessage()]
    assert [record.levelname for record in about_the_key] == ["WARNING"]
    assert about_the_key[0].exc_info is None
    line = about_the_key[0].getMessage()
    assert "with_unique_store" in line
    assert quoted(key) in line
    assert len(line) < 3 * MAX_QUOTED_CHARS


async def test_a_task_of_a_broker_without_acks_or_cancellations_frees_its_key_when_it_ends():
    from taskq import Receiver
    from taskq_inmemory import InmemoryResultBackend

    broker = PlainQueueBroker().with_result_backend(InmemoryResultBackend())

    @broker.task
    async def job() -> str:
        return "done"

    first = await job.kicker().with_unique(key="k").kiq()
    await Receiver(broker).callback(await broker.queue.get())
    assert (await first.get_result()).return_value == "done"
    assert await _key_is_free(broker, "k")
    second = await job.kicker().with_unique(key="k").kiq()
    assert second.task_id != first.task_id


async def test_a_message_for_an_unknown_task_frees_its_key():
    from taskq import Receiver
    from taskq_inmemory import InmemoryResultBackend

    broker = PlainQueueBroker().with_result_backend(InmemoryResultBackend())
    assert await unique_store_of(broker).claim("k", "t1", 60) is None
    message = TaskiqMessage(task_id="t1", task_name="no.such:task", labels={UNIQUE_LABEL: "k"})
    await Receiver(broker).callback(broker.formatter.dumps(message).message)
    assert (await broker.result_backend.get_result("t1")).is_err
    assert await _key_is_free(broker, "k")
