"""SimpleRetryMiddleware on the in-memory broker: attempts, labels, final results, opt-outs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from taskq import (
    Context,
    TaskCancelledError,
    TaskiqDepends,
    TaskiqMessage,
    TaskiqMiddleware,
    TaskiqResult,
)
from taskq.task_events import MAX_QUOTED_CHARS, MAX_TASK_ID_CHARS, quoted, stored_task_id
from taskq_inmemory import InMemoryBroker
from taskq_middlewares import NoRetryError, SimpleRetryMiddleware, SmartRetryMiddleware
from taskq_middlewares.simple_retry import int_label

WAIT = 10


def broker_with(middleware: SimpleRetryMiddleware) -> InMemoryBroker:
    return InMemoryBroker().with_middlewares(middleware)


class Runs:
    """What a task saw on each of its runs: the ``_retries`` label."""

    def __init__(self) -> None:
        self.retries: list[Any] = []

    def note(self, context: Context) -> int:
        self.retries.append(context.message.labels.get("_retries"))
        return len(self.retries)


async def test_a_failing_task_runs_max_retries_times_and_its_last_error_is_stored(
    running: Any,
) -> None:
    broker = broker_with(SimpleRetryMiddleware())
    runs = Runs()

    @broker.task(retry_on_error=True, max_retries=3)
    async def flaky(context: Context = TaskiqDepends()) -> None:
        attempt = runs.note(context)
        raise ValueError(f"attempt {attempt}")

    async with running(broker):
        result = await (await flaky.kiq()).wait_result(timeout=WAIT)
    assert runs.retries == [None, 1, 2]  # three runs in all: max_retries counts attempts
    assert result.is_err
    assert str(result.error) == "attempt 3"


async def test_a_task_that_recovers_returns_its_value_under_the_same_task_id(running: Any) -> None:
    broker = broker_with(SimpleRetryMiddleware(default_retry_count=5))
    runs = Runs()
    task_ids: set[str] = set()

    @broker.task(retry_on_error=True)
    async def recovers(x: int, context: Context = TaskiqDepends()) -> int:
        task_ids.add(context.message.task_id)
        if runs.note(context) < 3:
            raise ConnectionError("not yet")
        return x * 2

    async with running(broker):
        task = await recovers.kiq(21)
        result = await task.wait_result(timeout=WAIT)
    assert result.return_value == 42
    assert not result.is_err
    assert runs.retries == [None, 1, 2]
    assert task_ids == {task.task_id}


@pytest.mark.parametrize(
    ("middleware", "labels", "runs_expected"),
    [
        (SimpleRetryMiddleware(), {}, 1),  # retries are opt-in by default
        (SimpleRetryMiddleware(default_retry_label=True), {}, 3),
        (SimpleRetryMiddleware(default_retry_label=True), {"retry_on_error": False}, 1),
        (SimpleRetryMiddleware(), {"retry_on_error": "true", "max_retries": "2"}, 2),
        (SimpleRetryMiddleware(max_retries=4), {"retry_on_error": True}, 4),
    ],
)
async def test_labels_and_defaults_decide_how_many_runs(
    running: Any, middleware: SimpleRetryMiddleware, labels: dict[str, Any], runs_expected: int
) -> None:
    broker = broker_with(middleware)
    runs = Runs()

    @broker.task
    async def fails(context: Context = TaskiqDepends()) -> None:
        runs.note(context)
        raise RuntimeError("no")

    async with running(broker):
        result = await (await fails.kicker().with_labels(**labels).kiq()).wait_result(timeout=WAIT)
    assert result.is_err
    assert len(runs.retries) == runs_expected


async def test_no_retry_error_and_bad_arguments_are_never_retried(running: Any) -> None:
    broker = broker_with(SimpleRetryMiddleware(default_retry_label=True))
    runs = Runs()

    @broker.task
    async def refuses(n: int, context: Context = TaskiqDepends()) -> None:
        runs.note(context)
        raise NoRetryError("the card was declined")

    async with running(broker):
        refused = await (await refuses.kiq(1)).wait_result(timeout=WAIT)
        bad_args = await (await refuses.kiq("not a number")).wait_result(timeout=WAIT)  # type: ignore[arg-type]
    assert isinstance(refused.error, NoRetryError)
    assert "TaskArgumentsError" in type(bad_args.error).__name__
    assert len(runs.retries) == 1  # the bad-arguments message never reached the function


async def test_types_of_exceptions_limit_what_is_retried_broker_wide_and_per_task(
    running: Any,
) -> None:
    broker = broker_with(
        SimpleRetryMiddleware(default_retry_label=True, types_of_exceptions=[ConnectionError])
    )
    runs: dict[str, int] = {}

    @broker.task
    async def network() -> None:
        runs["network"] = runs.get("network", 0) + 1
        raise ConnectionError

    @broker.task
    async def logic() -> None:
        runs["logic"] = runs.get("logic", 0) + 1
        raise KeyError

    @broker.task(types_of_exceptions=[KeyError])
    async def lookup() -> None:
        runs["lookup"] = runs.get("lookup", 0) + 1
        raise KeyError

    async with running(broker):
        for task in (network, logic, lookup):
            await (await task.kiq()).wait_result(timeout=WAIT)
    assert runs == {"network": 3, "logic": 1, "lookup": 3}


async def test_without_no_result_on_retry_each_failed_run_stores_its_error(running: Any) -> None:
    stored: list[str] = []

    class Saved(TaskiqMiddleware):
        def post_save(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
            stored.append(str(result.error))

    broker = InMemoryBroker().with_middlewares(
        SimpleRetryMiddleware(no_result_on_retry=False), Saved()
    )
    runs = Runs()

    @broker.task(retry_on_error=True, max_retries=2)
    async def fails(context: Context = TaskiqDepends()) -> None:
        raise ValueError(f"attempt {runs.note(context)}")

    async with running(broker):
        await (await fails.kiq()).wait_result(timeout=WAIT)
        await broker.wait_all()
    assert stored == ["attempt 1", "attempt 2"]
    assert runs.retries == [None, 1]


def failure_records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """The records that report a run failing with ``text``: the worker's and the retries'."""
    return [r for r in caplog.records if text in r.getMessage() and "failed" in r.getMessage()]


@pytest.mark.parametrize("middleware_type", [SimpleRetryMiddleware, SmartRetryMiddleware])
async def test_a_retried_failure_is_one_warning_line_and_only_the_last_has_a_traceback(
    running: Any, caplog: pytest.LogCaptureFixture, middleware_type: type
) -> None:
    quick = {"default_delay": 0.01} if middleware_type is SmartRetryMiddleware else {}
    broker = broker_with(middleware_type(default_retry_label=True, **quick))

    @broker.task(max_retries=3)
    async def fails() -> None:
        raise ValueError("boom")

    async with running(broker):
        task = await fails.kiq()
        result = await task.wait_result(timeout=WAIT)
    assert str(result.error) == "boom"
    records = failure_records(caplog, "boom")
    retries = [r for r in records if "retrying" in r.getMessage()]
    assert [r.levelno for r in retries] == [logging.WARNING, logging.WARNING]
    assert "failed (attempt 1 of 3): ValueError: boom; retrying" in retries[0].getMessage()
    assert all(r.exc_info is None for r in retries)
    with_traceback = [r for r in records if r.exc_info is not None]
    assert len(with_traceback) == 1  # the last attempt's, logged by the worker
    assert with_traceback[0].levelno == logging.ERROR
    assert with_traceback[0].name == "taskq.receiver"


async def test_a_task_that_recovers_after_retries_logs_no_traceback(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broker = broker_with(SimpleRetryMiddleware(default_retry_label=True))
    runs = Runs()

    @broker.task
    async def recovers(context: Context = TaskiqDepends()) -> str:
        if runs.note(context) < 3:
            raise ConnectionError("not yet")
        return "done"

    async with running(broker):
        result = await (await recovers.kiq()).wait_result(timeout=WAIT)
    assert result.return_value == "done"
    assert not [r for r in caplog.records if r.exc_info is not None]
    assert len(failure_records(caplog, "not yet")) == 2


async def test_without_no_result_on_retry_each_failure_keeps_its_traceback(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # each failed run's error is stored, as the user asked: the worker logs each one in full
    broker = broker_with(SimpleRetryMiddleware(default_retry_label=True, no_result_on_retry=False))

    @broker.task(max_retries=2)
    async def fails() -> None:
        raise ValueError("kept")

    async with running(broker):
        await (await fails.kiq()).wait_result(timeout=WAIT)
        await broker.wait_all()
    assert len([r for r in failure_records(caplog, "kept") if r.exc_info is not None]) == 2


async def test_a_retry_that_cannot_be_sent_leaves_the_error_stored_and_logged_once(
    running: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BrokenResend(TaskiqMiddleware):
        def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
            if "_retries" in message.labels:
                raise ConnectionError("the broker is gone")
            return message

    broker = InMemoryBroker().with_middlewares(BrokenResend(), SimpleRetryMiddleware())

    @broker.task(retry_on_error=True)
    async def fails() -> None:
        raise ValueError("original")

    async with running(broker):
        result = await (await fails.kiq()).wait_result(timeout=WAIT)
    assert str(result.error) == "original"
    lines = [r for r in caplog.records if "retry could not be sent" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.ERROR


async def test_an_unreadable_max_retries_label_falls_back_to_the_default(
    running: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = broker_with(SimpleRetryMiddleware(default_retry_count=2))
    runs = Runs()

    @broker.task(retry_on_error=True, max_retries="many")
    async def fails(context: Context = TaskiqDepends()) -> None:
        runs.note(context)
        raise ValueError

    async with running(broker):
        await (await fails.kiq()).wait_result(timeout=WAIT)
    assert len(runs.retries) == 2
    assert "max_retries='many' is not an integer" in caplog.text


@pytest.mark.parametrize(
    ("labels", "runs_expected"),
    [
        ({"_retries": -50}, 3),  # ran 53 times: each negative count was one more attempt
        ({"_retries": "-3"}, 3),
        ({"max_retries": float("inf")}, 3),  # OverflowError in the middleware: no retry at all
    ],
)
async def test_hand_set_retry_labels_cannot_add_attempts_or_break_the_middleware(
    running: Any, labels: dict[str, Any], runs_expected: int
) -> None:
    broker = broker_with(SimpleRetryMiddleware(default_retry_count=3))
    runs = Runs()

    @broker.task(retry_on_error=True)
    async def fails(context: Context = TaskiqDepends()) -> None:
        runs.note(context)
        raise ValueError

    async with running(broker):
        result = await (await fails.kicker().with_labels(**labels).kiq()).wait_result(timeout=WAIT)
    assert result.is_err
    assert len(runs.retries) == runs_expected


@pytest.mark.parametrize("middleware_type", [SimpleRetryMiddleware, SmartRetryMiddleware])
async def test_a_cancelled_task_is_never_retried(running: Any, middleware_type: type) -> None:
    sent: list[str] = []

    class CountSends(TaskiqMiddleware):
        def post_send(self, message: TaskiqMessage) -> None:
            sent.append(message.task_id)

    retries = middleware_type(default_retry_label=True, default_retry_count=5)
    broker = InMemoryBroker().with_middlewares(CountSends(), retries)
    runs = Runs()
    started = asyncio.Event()

    @broker.task
    async def long(context: Context = TaskiqDepends()) -> None:
        runs.note(context)
        started.set()
        await asyncio.sleep(3600)

    async with running(broker):
        task = await long.kiq()
        await asyncio.wait_for(started.wait(), WAIT)
        await task.cancel("stop")
        result = await task.wait_result(timeout=WAIT)
        await broker.wait_all()
    assert isinstance(result.error, TaskCancelledError)
    assert runs.retries == [None]
    assert sent == [task.task_id]  # no retry was sent


@pytest.mark.parametrize(
    "middleware",
    [
        SimpleRetryMiddleware(default_retry_count=2),
        SmartRetryMiddleware(default_retry_count=2, default_delay=0),
    ],
    ids=["simple", "smart"],
)
async def test_a_task_id_of_megabytes_is_logged_as_the_event_store_keeps_it(
    running: Any, caplog: pytest.LogCaptureFixture, middleware: SimpleRetryMiddleware
) -> None:
    # each retry line held the whole id: 5 MB a line for a message with a 5 MB task id
    broker = broker_with(middleware)
    long_id = "i" * 5_000_000

    @broker.task(retry_on_error=True)
    async def fails() -> None:
        raise ValueError("no")

    with caplog.at_level(logging.INFO, logger="taskq.retry"):
        async with running(broker):
            task = await fails.kicker().with_task_id(long_id).kiq()
            await task.wait_result(timeout=WAIT)
    lines = [r.getMessage() for r in caplog.records if r.name == "taskq.retry"]
    assert len(lines) == 2  # retrying, then the last attempt
    for line in lines:
        assert stored_task_id(long_id) in line
        assert len(line) < 2 * MAX_TASK_ID_CHARS


def test_a_bad_label_of_megabytes_is_logged_bounded(caplog: pytest.LogCaptureFixture) -> None:
    # the warning quoted the label's whole value: a 5 MB label made a 5 MB line
    bad = "x" * 5_000_000
    message = TaskiqMessage("t1", "m:t", {"max_retries": bad, "delay": bad}, [], {})
    retry = SmartRetryMiddleware(default_delay=2)
    InMemoryBroker().add_middlewares(retry)
    with caplog.at_level(logging.WARNING, logger="taskq.retry"):
        assert int_label(message, "max_retries", 3) == 3
        assert retry.base_delay(message) == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "taskq.retry"]
    assert len(lines) == 2
    for line in lines:
        assert quoted(bad) in line
        assert len(line) < 2 * MAX_QUOTED_CHARS
