"""The receiver: each step of a message's run, bad input, ack modes and the consume loop."""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import threading
from typing import Any

import pytest

from taskq import (
    AcknowledgeType,
    Context,
    MessageDecodeError,
    NoResultError,
    Receiver,
    ResultSetError,
    TaskArgumentsError,
    TaskExitError,
    TaskiqDepends,
    TaskiqMiddleware,
    TaskiqResult,
    TaskiqState,
    TaskRejectedError,
    TaskRetriedError,
    TaskTimeoutError,
    UnknownTaskError,
)
from taskq.formatters import JSONFormatter
from taskq.receiver import store_outage
from taskq.serializers import (
    CBORSerializer,
    JSONSerializer,
    MSGPackSerializer,
    ORJSONSerializer,
    PickleSerializer,
)
from taskq.task_events import (
    MAX_TASK_ID_CHARS,
    MAX_TASK_NAME_CHARS,
    stored_task_id,
    stored_task_name,
)
from taskq.testing import eventually
from taskq_inmemory import InmemoryResultBackend


async def run_one(broker: Any, data: bytes, **receiver_options: Any) -> Receiver:
    receiver = Receiver(broker, **receiver_options)
    await receiver.callback(broker.ackable(data))
    return receiver


async def result_of(broker: Any, task_id: str = "t1") -> TaskiqResult[Any]:
    return await broker.result_backend.get_result(task_id)


def put_many(broker: Any, encode: Any, task_name: str, count: int, id_prefix: str) -> None:
    for n in range(count):
        broker.put_raw(encode(broker, task_name, task_id=f"{id_prefix}{n}"))


async def test_runs_async_task_stores_result_and_acks_after_saving(recording_broker, encode):
    @recording_broker.task
    async def add(a: int, b: int) -> int:
        return a + b

    data = encode(recording_broker, add.task_name, 2, 3)
    await run_one(recording_broker, data)
    result = await result_of(recording_broker)
    assert (result.is_err, result.return_value) == (False, 5)
    assert result.execution_time >= 0
    assert recording_broker.settled == [("ack", data)]


async def test_sync_task_runs_in_a_thread_pool(recording_broker, encode):
    @recording_broker.task
    def whoami() -> str:
        return threading.current_thread().name

    await run_one(recording_broker, encode(recording_broker, whoami.task_name))
    result = await result_of(recording_broker)
    assert result.return_value.startswith("taskq-sync")


async def test_arguments_are_cast_to_annotations_by_name(recording_broker, encode):
    @recording_broker.task
    async def mixed(a, b: int, *rest: float, flag: bool = False, **extra: int) -> list[Any]:
        return [a, b, rest, flag, extra]

    data = encode(recording_broker, mixed.task_name, "x", "2", "1.5", 2, flag="true", n="7")
    await run_one(recording_broker, data)
    result = await result_of(recording_broker)
    # the unannotated `a` is passed as is and does not shift the casting of `b`
    assert result.return_value == ["x", 2, (1.5, 2.0), True, {"n": 7}]


async def test_cast_types_off_passes_values_untouched(recording_broker, encode):
    @recording_broker.task
    async def echo(b: int) -> Any:
        return b

    await run_one(
        recording_broker, encode(recording_broker, echo.task_name, "2"), validate_params=False
    )
    assert (await result_of(recording_broker)).return_value == "2"


async def test_arguments_that_do_not_fit_give_a_typed_failed_result(
    recording_broker, encode, caplog
):
    @recording_broker.task
    async def one(a: int) -> int:
        return a

    await run_one(recording_broker, encode(recording_broker, one.task_name, 1, 2, task_id="many"))
    await run_one(recording_broker, encode(recording_broker, one.task_name, "nope", task_id="bad"))
    many = await result_of(recording_broker, "many")
    bad = await result_of(recording_broker, "bad")
    assert many.is_err
    assert isinstance(many.error, TaskArgumentsError)
    assert isinstance(bad.error, TaskArgumentsError)
    assert "parameter 'a'" in str(bad.error)
    assert [kind for kind, _ in recording_broker.settled] == ["ack", "ack"]
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2


async def test_undecodable_bytes_are_rejected_and_logged_once(recording_broker, caplog):
    for junk in (b"\xff\xfe\x00", b"[1, 2]", b'{"task_id": "x"}'):
        await run_one(recording_broker, junk)
    assert [kind for kind, _ in recording_broker.settled] == ["reject"] * 3
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3
    assert all("cannot be decoded" in r.getMessage() for r in errors)


@pytest.mark.parametrize(
    "serializer",
    [JSONSerializer, MSGPackSerializer, CBORSerializer, ORJSONSerializer, PickleSerializer],
)
@pytest.mark.parametrize(
    ("field", "bad_value"),
    [("args", "abc"), ("kwargs", [1]), ("labels", "x"), ("task_name", None)],
)
async def test_an_invalid_message_naming_its_task_id_stores_a_typed_failure(
    recording_broker, caplog, serializer, field, bad_value
):
    recording_broker.with_serializer(serializer())
    fields = {"task_id": "d1", "task_name": "t:x", "labels": {}, "args": [], "kwargs": {}}
    data = recording_broker.serializer.dumpb({**fields, field: bad_value})
    await run_one(recording_broker, data)
    result = await result_of(recording_broker, "d1")
    assert result.is_err
    assert isinstance(result.error, MessageDecodeError)
    assert result.error.task_id == "d1"
    assert field in str(result.error)
    assert recording_broker.settled == [("reject", data)]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "d1" in errors[0].getMessage()


async def test_an_invalid_message_is_refused_alike_with_the_json_formatter(recording_broker):
    recording_broker.with_serializer(PickleSerializer()).with_formatter(JSONFormatter())
    await run_one(recording_broker, b'{"task_id": "j1", "task_name": "t:x", "args": "abc"}')
    assert isinstance((await result_of(recording_broker, "j1")).error, MessageDecodeError)


async def test_unknown_task_stores_a_failed_result_and_rejects(recording_broker, encode, caplog):
    data = encode(recording_broker, "no.such:task", task_id="u1")
    await run_one(recording_broker, data)
    result = await result_of(recording_broker, "u1")
    assert result.is_err
    assert isinstance(result.error, UnknownTaskError)
    assert recording_broker.settled == [("reject", data)]
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


async def test_an_unknown_task_name_of_megabytes_is_not_quoted_whole(
    recording_broker, encode, caplog
):
    # the error quoted the whole name: a 5 MB name made a 15 MB failed result (the error's
    # message, its args and its field), a 5 MB log line and a 5 MB reason for the dead letter
    name = "n" * 1_000_000
    await run_one(recording_broker, encode(recording_broker, name, task_id="u2"))
    error = (await result_of(recording_broker, "u2")).error
    assert isinstance(error, UnknownTaskError)
    assert error.task_name == stored_task_name(name)
    assert len(str(error)) < 2 * MAX_TASK_NAME_CHARS
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(line) < 2 * MAX_TASK_NAME_CHARS


async def test_bad_input_with_a_task_id_of_megabytes_logs_the_id_the_event_store_keeps(
    recording_broker, encode, caplog
):
    # each line quoted the whole id: a 5 MB id and a bad label made a 5 MB line; the decode
    # error quoted it too, in the failed result stored under the id (twice) and in its line
    @recording_broker.task
    async def work() -> None: ...

    long_id = "i" * 1_000_000
    bad_label = encode(recording_broker, work.task_name, task_id=long_id, labels={"ack_type": 3})
    await run_one(recording_broker, bad_label)
    undecodable = recording_broker.serializer.dumpb(
        {"task_id": long_id, "task_name": "t:x", "labels": {}, "args": 5, "kwargs": {}}
    )
    await run_one(recording_broker, undecodable)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(lines) == 2
    for line in lines:
        assert stored_task_id(long_id) in line
        assert len(line) < 3 * MAX_TASK_ID_CHARS  # the decode error's line names it twice
    error = (await result_of(recording_broker, long_id)).error
    assert isinstance(error, MessageDecodeError)
    assert error.task_id == long_id  # where the sender waits for it
    assert len(str(error)) < 2 * MAX_TASK_ID_CHARS


class JSONStoringBackend(InmemoryResultBackend[Any]):
    """Encodes every result as JSON before keeping it, as a networked backend would."""

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        JSONSerializer().dumpb(result.to_dict())
        await super().set_result(task_id, result)


async def test_unencodable_result_is_replaced_by_an_error_result(recording_broker, encode, caplog):
    recording_broker.with_result_backend(JSONStoringBackend())

    @recording_broker.task
    async def opaque() -> object:
        return object()

    data = encode(recording_broker, opaque.task_name)
    await run_one(recording_broker, data)
    result = await result_of(recording_broker)
    assert result.is_err
    assert isinstance(result.error, ResultSetError)
    assert "could not be stored" in str(result.error)
    assert recording_broker.settled == [("ack", data)]
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


class BrokenBackend(InmemoryResultBackend[Any]):
    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        raise ConnectionError("backend down")


async def run_fine(broker: Any, encode: Any, backend: Any, **options: Any) -> bytes:
    """Run one message of a task returning 1 on ``broker`` storing in ``backend``; its bytes."""
    broker.with_result_backend(backend)

    @broker.task
    async def fine() -> int:
        return 1

    data: bytes = encode(broker, fine.task_name)
    await run_one(broker, data, **options)
    return data


async def test_result_not_stored_at_all_releases_the_message_for_redelivery(
    recording_broker, encode, caplog
):
    data = await run_fine(recording_broker, encode, BrokenBackend())
    assert recording_broker.settled == [("release", data)]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "released for redelivery" in errors[0].getMessage()


class BackSoonBackend(InmemoryResultBackend[Any]):
    """Down for the first store; back the moment that store has failed."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        if self.down:
            self.down = False
            raise ConnectionError("backend down")
        await super().set_result(task_id, result)


async def test_a_backend_back_after_a_failed_store_gets_the_result_not_an_error(
    recording_broker, encode, caplog
):
    data = await run_fine(recording_broker, encode, BackSoonBackend())
    result = await result_of(recording_broker)
    assert not result.is_err, result.error
    assert result.return_value == 1
    assert recording_broker.settled == [("ack", data)]
    assert "stored on a second try" in caplog.text


class SilentBackend(BrokenBackend):
    async def is_result_ready(self, task_id: str) -> bool:
        raise ConnectionError("backend down")


async def test_a_backend_that_does_not_answer_gets_no_error_result(
    recording_broker, encode, caplog
):
    data = await run_fine(recording_broker, encode, SilentBackend())
    assert recording_broker.settled == [("release", data)]
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "does not answer" in error.getMessage()


class SwitchedBackend(InmemoryResultBackend[Any]):
    """Down (neither storing nor answering) while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        if self.down:
            raise ConnectionError("backend down")
        await super().set_result(task_id, result)

    async def is_result_ready(self, task_id: str) -> bool:
        if self.down:
            raise ConnectionError("backend down")
        return await super().is_result_ready(task_id)


async def test_a_backend_outage_is_logged_once_summed_up_and_ended_once(
    recording_broker, encode, caplog, monkeypatch
):
    backend = SwitchedBackend()
    recording_broker.with_result_backend(backend)

    @recording_broker.task
    async def fine() -> int:
        return 1

    receiver = Receiver(recording_broker)
    clock = [1000.0]
    monkeypatch.setattr(store_outage.time, "monotonic", lambda: clock[0])
    for n in range(300):  # 300 tasks while the backend is down: one error line each before
        if n == 200:
            clock[0] += store_outage.REPORT_INTERVAL_S
        data = encode(recording_broker, fine.task_name, task_id=f"t{n}")
        await receiver.callback(recording_broker.ackable(data))
    backend.down = False
    await receiver.callback(recording_broker.ackable(encode(recording_broker, fine.task_name)))
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 3, lines
    assert lines[0].startswith("Task t0: the result could not be stored")
    assert "released for redelivery" in lines[0]
    assert lines[1].startswith("200 more results could not be stored")
    assert "the last, task t200:" in lines[1]
    assert lines[2] == "The result backend stores results again, after 300 could not be stored"
    assert [kind for kind, _ in recording_broker.settled] == ["release"] * 300 + ["ack"]


@pytest.mark.parametrize(
    ("ack_type", "settled"),
    [("when_received", "ack"), ("when_executed", "ack"), ("when_saved", "release")],
)
async def test_a_result_not_stored_settles_per_the_ack_mode(
    recording_broker, encode, ack_type, settled
):
    data = await run_fine(recording_broker, encode, BrokenBackend(), ack_type=ack_type)
    assert recording_broker.settled == [(settled, data)]


async def test_a_manual_task_that_never_acks_has_its_message_released(
    recording_broker, encode, caplog
):
    @recording_broker.task
    async def forgetful() -> int:
        return 1

    data = encode(recording_broker, forgetful.task_name)
    await run_one(recording_broker, data, ack_type="manual")
    assert (await result_of(recording_broker)).return_value == 1
    assert recording_broker.settled == [("release", data)]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "without acknowledging" in warnings[0].getMessage()


async def test_an_unexpected_error_while_processing_releases_the_message(
    recording_broker, encode, caplog
):
    class CancellingBackend(InmemoryResultBackend[Any]):
        async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
            raise asyncio.CancelledError  # not a cancellation of the worker's task

    recording_broker.with_result_backend(CancellingBackend())

    @recording_broker.task
    async def fine() -> int:
        return 1

    first = encode(recording_broker, fine.task_name, task_id="a")
    second = encode(recording_broker, fine.task_name, task_id="b")
    recording_broker.put_raw(first)
    recording_broker.put_raw(second)
    recording_broker.close()
    await asyncio.wait_for(Receiver(recording_broker).listen(), 5)
    assert sorted(recording_broker.settled) == [("release", first), ("release", second)]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2
    assert all("the worker goes on" in r.getMessage() for r in errors)


async def test_a_message_that_cannot_be_released_is_logged(recording_broker, encode, caplog):
    @recording_broker.task
    async def forgetful() -> int:
        return 1

    message = recording_broker.ackable(encode(recording_broker, forgetful.task_name))

    def release() -> None:
        raise ConnectionError("broker down")

    message.release = release
    await Receiver(recording_broker, ack_type="manual").callback(message)
    assert "could not be released for redelivery" in caplog.text


async def test_task_exception_becomes_a_failed_result(recording_broker, encode):
    @recording_broker.task
    async def boom() -> None:
        raise ValueError("bad value")

    await run_one(recording_broker, encode(recording_broker, boom.task_name))
    result = await result_of(recording_broker)
    assert result.is_err
    assert isinstance(result.error, ValueError)
    with pytest.raises(ValueError, match="bad value"):
        result.raise_for_error()


async def test_timeout_label_stops_waiting_for_async_and_sync_tasks(recording_broker, encode):
    @recording_broker.task
    async def slow() -> None:
        await asyncio.sleep(5)

    @recording_broker.task
    def slow_sync() -> None:
        threading.Event().wait(0.5)

    for name, task_id in ((slow.task_name, "a"), (slow_sync.task_name, "s")):
        data = encode(recording_broker, name, task_id=task_id, labels={"timeout": 0.05})
        await run_one(recording_broker, data)
        result = await result_of(recording_broker, task_id)
        assert isinstance(result.error, TaskTimeoutError)
        assert isinstance(result.error, TimeoutError)


async def test_a_returned_coroutine_is_awaited_within_the_timeout(recording_broker, encode):
    async def later(value: int, pause: float) -> int:
        await asyncio.sleep(pause)
        return value

    @recording_broker.task
    async def defer(pause: float = 0) -> Any:
        return later(7, pause)  # an await forgotten: taskiq awaits what a task returns

    @recording_broker.task
    def defer_sync() -> Any:
        return later(8, 0)

    runs = {
        "plain": ((defer.task_name, {}, {}), 7),
        "limited": ((defer.task_name, {"timeout": 30}, {}), 7),
        "sync": ((defer_sync.task_name, {}, {}), 8),
        "late": ((defer.task_name, {"timeout": 0.05}, {"pause": 30}), None),
    }
    for task_id, ((name, labels, kwargs), expected) in runs.items():
        data = encode(recording_broker, name, task_id=task_id, labels=labels, **kwargs)
        await run_one(recording_broker, data)
        result = await result_of(recording_broker, task_id)
        assert result.return_value == expected, task_id
    assert isinstance((await result_of(recording_broker, "late")).error, TaskTimeoutError)


@pytest.mark.parametrize(
    ("ack_type", "expected"),
    [
        ("when_received", ["ack", "run", "save"]),
        ("when_executed", ["run", "ack", "save"]),
        ("when_saved", ["run", "save", "ack"]),
        ("manual", ["run", "save"]),
    ],
)
async def test_ack_modes_ack_at_their_step(recording_broker, encode, ack_type, expected):
    events: list[str] = []
    backend = recording_broker.result_backend

    class Watching(InmemoryResultBackend[Any]):
        async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
            events.append("save")
            await backend.set_result(task_id, result)

    recording_broker.with_result_backend(Watching())

    @recording_broker.task
    async def work() -> None:
        events.append("run")

    message = recording_broker.ackable(encode(recording_broker, work.task_name))
    original_ack = message.ack

    async def ack() -> None:
        events.append("ack")
        await original_ack()

    message.ack = ack
    await Receiver(recording_broker, ack_type=AcknowledgeType(ack_type)).callback(message)
    assert events == expected


async def test_manual_ack_through_context(recording_broker, encode):
    @recording_broker.task
    async def acking(context: Context = TaskiqDepends()) -> bool:
        assert context.is_ackable
        assert not context.is_acked
        await context.ack()
        await context.ack()  # idempotent
        return context.is_acked

    data = encode(recording_broker, acking.task_name)
    await run_one(recording_broker, data, ack_type="manual")
    assert (await result_of(recording_broker)).return_value is True
    assert recording_broker.settled == [("ack", data)]


async def test_context_reject_rejects_and_stores_nothing(recording_broker, encode):
    @recording_broker.task
    async def refuse(context: Context = TaskiqDepends()) -> None:
        context.reject()

    data = encode(recording_broker, refuse.task_name)
    await run_one(recording_broker, data)
    assert recording_broker.settled == [("reject", data)]
    assert not await recording_broker.result_backend.is_result_ready("t1")


async def test_context_requeue_sends_again_with_a_count(recording_broker, encode):
    @recording_broker.task
    async def again(context: Context = TaskiqDepends()) -> None:
        if context.message.labels.get("requeue_count", 0) < 2:
            await context.requeue()

    await run_one(recording_broker, encode(recording_broker, again.task_name))
    assert not await recording_broker.result_backend.is_result_ready("t1")
    requeued = recording_broker.formatter.loads(recording_broker.queue.get_nowait())
    assert requeued.labels["requeue_count"] == 1
    assert requeued.task_id == "t1"


class Settings:
    def __init__(self, name: str) -> None:
        self.name = name


async def test_dependencies_state_and_custom_context_are_injected(recording_broker, encode):
    recording_broker.add_dependency_context({Settings: Settings("prod")})
    recording_broker.state.set_value("greeting", "hi")
    closed: list[bool] = []

    def resource() -> Any:
        yield "res"
        closed.append(True)

    @recording_broker.task
    async def uses(
        x: int,
        state: TaskiqState = TaskiqDepends(),
        settings: Settings = TaskiqDepends(),
        res: str = TaskiqDepends(resource),
    ) -> str:
        return f"{x}-{state.greeting}-{settings.name}-{res}"

    await run_one(recording_broker, encode(recording_broker, uses.task_name, "4"))
    assert (await result_of(recording_broker)).return_value == "4-hi-prod-res"
    assert closed == [True]


async def test_middleware_hooks_run_in_order_sync_and_async(recording_broker, encode):
    calls: list[str] = []

    class Tracing(TaskiqMiddleware):
        def pre_execute(self, message):
            calls.append("pre_execute")
            if message.task_name.endswith(":add"):
                message.kwargs["b"] = 10
            return message

        async def post_execute(self, message, result):
            calls.append(f"post_execute:{result.return_value}")

        def on_error(self, message, result, exception):
            calls.append(f"on_error:{type(exception).__name__}")

        async def post_save(self, message, result):
            calls.append("post_save")

    recording_broker.add_middlewares(Tracing())

    @recording_broker.task
    async def add(a: int, b: int = 0) -> int:
        return a + b

    @recording_broker.task
    async def fail() -> None:
        raise KeyError("k")

    await run_one(recording_broker, encode(recording_broker, add.task_name, 1))
    assert calls == ["pre_execute", "post_execute:11", "post_save"]
    calls.clear()
    await run_one(recording_broker, encode(recording_broker, fail.task_name, task_id="f"))
    assert calls == ["pre_execute", "post_execute:None", "on_error:KeyError", "post_save"]


class RaisesNoResult(TaskiqMiddleware):
    def on_error(self, message, result, exception):
        raise NoResultError


class SetsNoResult(TaskiqMiddleware):
    def on_error(self, message, result, exception):
        result.error = NoResultError()  # how the retry middlewares skip storing


@pytest.mark.parametrize("middleware", [RaisesNoResult, SetsNoResult])
async def test_middleware_may_ask_for_no_result(recording_broker, encode, middleware):
    recording_broker.add_middlewares(middleware())

    @recording_broker.task
    async def fail() -> None:
        raise KeyError("k")

    data = encode(recording_broker, fail.task_name)
    await run_one(recording_broker, data)
    assert not await recording_broker.result_backend.is_result_ready("t1")
    assert recording_broker.settled == [("ack", data)]


async def test_a_post_execute_asking_for_no_result_of_a_success_stores_nothing(
    recording_broker, encode
):
    class SkipsSuccess(TaskiqMiddleware):
        def post_execute(self, message, result):
            result.error = NoResultError()

    recording_broker.add_middlewares(SkipsSuccess())

    @recording_broker.task
    async def works() -> int:
        return 1

    await run_one(recording_broker, encode(recording_broker, works.task_name))
    assert not await recording_broker.result_backend.is_result_ready("t1")


class SetsRetried(TaskiqMiddleware):
    def on_error(self, message, result, exception):
        result.error = TaskRetriedError()  # a retry middleware that sent the task again


@pytest.mark.parametrize(("middleware", "logged"), [(SetsNoResult, 1), (SetsRetried, 0)])
async def test_a_failure_is_logged_once_with_its_traceback_unless_it_was_sent_again(
    recording_broker, encode, caplog, middleware, logged
):
    recording_broker.add_middlewares(middleware())

    @recording_broker.task
    async def fail() -> None:
        raise KeyError("lost key")

    await run_one(recording_broker, encode(recording_broker, fail.task_name))
    records = [r for r in caplog.records if "lost key" in r.getMessage()]
    assert len(records) == logged
    assert all(r.exc_info is not None and r.levelno == logging.ERROR for r in records)
    assert not await recording_broker.result_backend.is_result_ready("t1")


async def test_post_execute_sees_control_flow_results_but_on_error_does_not(
    recording_broker, encode
):
    calls: list[str] = []

    class Tracing(TaskiqMiddleware):
        def post_execute(self, message, result):
            calls.append(f"post_execute:{type(result.error).__name__}")

        def on_error(self, message, result, exception):
            calls.append("on_error")

    recording_broker.add_middlewares(Tracing())

    @recording_broker.task
    async def skip() -> None:
        raise NoResultError

    @recording_broker.task
    async def refuse() -> None:
        raise TaskRejectedError

    await run_one(recording_broker, encode(recording_broker, skip.task_name))
    refused = encode(recording_broker, refuse.task_name, task_id="r")
    await run_one(recording_broker, refused)
    assert calls == ["post_execute:NoResultError", "post_execute:TaskRejectedError"]
    assert recording_broker.settled[-1] == ("reject", refused)


async def test_failing_middlewares_never_stop_the_worker(recording_broker, encode, caplog):
    class Broken(TaskiqMiddleware):
        def post_execute(self, message, result):
            raise RuntimeError("post")

        def post_save(self, message, result):
            raise RuntimeError("save")

    recording_broker.add_middlewares(Broken())

    @recording_broker.task
    async def ok() -> int:
        return 1

    await run_one(recording_broker, encode(recording_broker, ok.task_name))
    assert (await result_of(recording_broker)).return_value == 1
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2

    class BrokenBefore(TaskiqMiddleware):
        def pre_execute(self, message):
            raise RuntimeError("pre")

    recording_broker.add_middlewares(BrokenBefore())
    await run_one(recording_broker, encode(recording_broker, ok.task_name, task_id="p"))
    assert isinstance((await result_of(recording_broker, "p")).error, RuntimeError)


async def test_listen_bounds_running_tasks_and_drains_on_stop(recording_broker, encode):
    running = 0
    peak = 0

    @recording_broker.task
    async def busy() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    put_many(recording_broker, encode, busy.task_name, 20, "b")
    recording_broker.close()
    await Receiver(recording_broker, max_async_tasks=3).listen()
    assert peak == 3
    assert len([kind for kind, _ in recording_broker.settled if kind == "ack"]) == 20


async def test_finished_messages_are_not_kept_by_a_long_running_receiver(recording_broker, encode):
    @recording_broker.task
    async def yields() -> None:
        await asyncio.sleep(0)

    put_many(recording_broker, encode, yields.task_name, 200, "y")
    recording_broker.close()
    receiver = Receiver(recording_broker, max_async_tasks=4)
    await receiver.listen()
    assert receiver.running == 0
    assert len(recording_broker.settled) == 200
    # finished tasks are forgotten in batches: never more than twice the slots are held
    assert len(receiver._running) <= 2 * 4


async def test_a_task_factory_set_on_the_loop_makes_the_message_tasks(recording_broker, encode):
    made: list[str] = []
    loop = asyncio.get_running_loop()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(coro.__qualname__)
        return asyncio.Task(coro, loop=loop, **kwargs)

    @recording_broker.task
    async def work() -> str:
        return "done"

    recording_broker.put_raw(encode(recording_broker, work.task_name, task_id="f1"))
    recording_broker.close()
    loop.set_task_factory(factory)
    try:
        await Receiver(recording_broker).listen()
    finally:
        loop.set_task_factory(None)
    assert "Receiver._run_message" in made
    assert (await result_of(recording_broker, "f1")).return_value == "done"


async def test_listen_stops_taking_messages_when_finish_event_is_set(recording_broker, encode):
    @recording_broker.task
    async def work() -> None:
        await asyncio.sleep(0.05)

    put_many(recording_broker, encode, work.task_name, 5, "w")
    finish = asyncio.Event()
    receiver = Receiver(recording_broker, max_async_tasks=2)
    listening = asyncio.create_task(receiver.listen(finish))
    await eventually(lambda: recording_broker.queue.qsize() == 3, what="two messages taken")
    finish.set()
    await asyncio.wait_for(listening, 2)
    # the two taken messages finished, stored and acked; the rest stay in the queue
    assert len(recording_broker.settled) == 2
    assert recording_broker.queue.qsize() == 3


async def test_max_tasks_to_execute_ends_the_loop(recording_broker, encode):
    @recording_broker.task
    async def work() -> None:
        pass

    put_many(recording_broker, encode, work.task_name, 5, "m")
    await asyncio.wait_for(Receiver(recording_broker, max_tasks_to_execute=3).listen(), 2)
    assert len(recording_broker.settled) == 3


async def test_max_tasks_to_execute_of_zero_is_no_limit_as_in_taskiq(recording_broker, encode):
    # taskiq's receiver reads 0 as "no limit"; here it took no message and returned at once
    @recording_broker.task
    async def work() -> None:
        pass

    put_many(recording_broker, encode, work.task_name, 3, "m")
    finish = asyncio.Event()
    listening = asyncio.create_task(
        Receiver(recording_broker, max_tasks_to_execute=0).listen(finish)
    )
    await eventually(lambda: len(recording_broker.settled) == 3, what="every message run")
    assert not listening.done()
    finish.set()
    await asyncio.wait_for(listening, 2)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_prefetch", -1),
        ("max_prefetch", math.nan),
        ("max_async_tasks", 0),
        ("max_async_tasks", math.inf),
        ("max_async_tasks_jitter", 1.5),
        ("max_async_tasks_jitter", -1),
        ("max_tasks_to_execute", -1),
        ("max_tasks_to_execute", 2.5),
        ("wait_tasks_timeout", math.nan),
        ("wait_tasks_timeout", -1),
    ],
)
def test_receiver_rejects_bad_options(recording_broker, option, value):
    # a NaN prefetch or timeout and an infinite max_async_tasks were taken; a jitter of 1.5
    # failed inside random.randrange; each now names the option
    with pytest.raises(ValueError, match=f"^{option} must be "):
        Receiver(recording_broker, **{option: value})


def test_formatter_errors_are_typed(recording_broker):
    with pytest.raises(MessageDecodeError, match="task_name"):
        recording_broker.formatter.loads(b'{"task_id": "a", "task_name": 3}')


async def test_context_variables_do_not_leak_between_messages(recording_broker, encode):
    import contextvars

    current: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="unset")

    @recording_broker.task
    async def set_it(value: str) -> str:
        before = current.get()
        current.set(value)
        await asyncio.sleep(0)  # continue as a task after the first wait
        return f"{before}->{current.get()}"

    for n in range(3):
        recording_broker.put_raw(
            encode(recording_broker, set_it.task_name, f"v{n}", task_id=f"c{n}")
        )
    recording_broker.close()
    await Receiver(recording_broker).listen()
    values = [(await result_of(recording_broker, f"c{n}")).return_value for n in range(3)]
    assert values == ["unset->v0", "unset->v1", "unset->v2"]
    assert current.get() == "unset"


async def test_a_waiting_task_can_be_cancelled_at_shutdown(recording_broker, encode):
    started = asyncio.Event()

    @recording_broker.task
    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    recording_broker.put_raw(encode(recording_broker, forever.task_name))
    finish = asyncio.Event()
    receiver = Receiver(recording_broker, wait_tasks_timeout=0.05)
    listening = asyncio.create_task(receiver.listen(finish))
    await asyncio.wait_for(started.wait(), 2)
    finish.set()
    await asyncio.wait_for(listening, 2)
    assert receiver.running == 1  # still running after the shutdown timeout: not acked
    assert recording_broker.settled == []
    running = list(receiver._running)
    for task in running:
        task.cancel()
    outcomes = await asyncio.gather(*running, return_exceptions=True)
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
    await asyncio.sleep(0)
    assert receiver.running == 0


async def test_requeue_in_manual_mode_acknowledges_the_replaced_delivery(recording_broker, encode):
    @recording_broker.task
    async def again(context: Context = TaskiqDepends()) -> None:
        if not context.message.labels.get("requeue_count"):
            await context.requeue()

    data = encode(recording_broker, again.task_name)
    await run_one(recording_broker, data, ack_type="manual")
    assert recording_broker.settled == [("ack", data)]


async def test_generic_annotations_are_cast(recording_broker, encode):
    @recording_broker.task
    async def total(values: list[int], weights: dict[str, float]) -> float:
        return sum(values) * weights["w"]

    await run_one(
        recording_broker, encode(recording_broker, total.task_name, ["1", 2], {"w": "0.5"})
    )
    assert (await result_of(recording_broker)).return_value == 1.5


async def test_a_timed_out_task_does_not_stop_the_consume_loop(recording_broker, encode):
    @recording_broker.task
    async def slow() -> None:
        await asyncio.sleep(5)

    @recording_broker.task
    async def quick() -> str:
        return "ok" if asyncio.current_task() is not None else "no task"

    timed = encode(recording_broker, slow.task_name, task_id="slow", labels={"timeout": 0.05})
    recording_broker.put_raw(timed)
    recording_broker.put_raw(encode(recording_broker, quick.task_name, task_id="quick"))
    recording_broker.close()
    await asyncio.wait_for(Receiver(recording_broker).listen(), 5)
    assert isinstance((await result_of(recording_broker, "slow")).error, TaskTimeoutError)
    assert (await result_of(recording_broker, "quick")).return_value == "ok"


class Stop(BaseException):
    """A BaseException of the user's own."""


def exiting(kind: str) -> Any:
    if kind == "sys.exit":
        sys.exit(3)
    if kind == "SystemExit":
        raise SystemExit("bye")
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if kind == "CancelledError":
        raise asyncio.CancelledError
    raise Stop("mine")


EXITS = [
    ("sys.exit", "SystemExit(3)"),
    ("SystemExit", "SystemExit('bye')"),
    ("KeyboardInterrupt", "KeyboardInterrupt()"),
    ("CancelledError", "CancelledError()"),
    ("Stop", "Stop('mine')"),
]


@pytest.mark.parametrize("timeout", [None, 5], ids=["", "timeout"])
@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
@pytest.mark.parametrize(("kind", "shown"), EXITS)
async def test_a_task_that_exits_fails_with_a_typed_error_and_the_worker_goes_on(
    recording_broker, encode, caplog, sync, kind, shown, timeout
):
    if sync:

        @recording_broker.task(task_name="exits")
        def exits_sync() -> None:
            exiting(kind)

    else:

        @recording_broker.task(task_name="exits")
        async def exits_async() -> None:
            exiting(kind)

    @recording_broker.task(task_name="after")
    async def after() -> str:
        return "ran"

    labels = {} if timeout is None else {"timeout": timeout}
    exit_data = encode(recording_broker, "exits", task_id="x", labels=labels)
    recording_broker.put_raw(exit_data)
    put_many(recording_broker, encode, "after", 3, "a")
    recording_broker.close()
    await asyncio.wait_for(Receiver(recording_broker).listen(), 5)

    failed = await result_of(recording_broker, "x")
    assert failed.is_err
    assert isinstance(failed.error, TaskExitError)
    assert failed.error.exception == shown
    assert shown in str(failed.error)
    assert failed.error.exception_type.endswith(shown.split("(")[0])
    for n in range(3):
        assert (await result_of(recording_broker, f"a{n}")).return_value == "ran"
    assert [kind for kind, _ in recording_broker.settled] == ["ack"] * 4
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "x" in errors[0].getMessage()
    assert errors[0].exc_info is not None  # where the task exited


async def test_the_exit_error_survives_the_trip_to_the_client(recording_broker, encode):
    recording_broker.with_result_backend(JSONStoringBackend())

    @recording_broker.task
    async def leave() -> None:
        sys.exit(3)

    await run_one(recording_broker, encode(recording_broker, leave.task_name))
    stored = (await result_of(recording_broker)).to_dict()
    error = TaskiqResult.from_dict(JSONSerializer().loadb(JSONSerializer().dumpb(stored))).error
    assert isinstance(error, TaskExitError)
    assert error.exception == "SystemExit(3)"
    assert "sys.exit() does not stop a worker" in str(error)


async def test_a_task_raising_cancelled_error_itself_through_callback(recording_broker, encode):
    @recording_broker.task
    async def gives_up() -> None:
        raise asyncio.CancelledError

    data = encode(recording_broker, gives_up.task_name)
    await run_one(recording_broker, data)
    error = (await result_of(recording_broker)).error
    assert isinstance(error, TaskExitError)
    assert "raised CancelledError itself" in str(error)
    assert recording_broker.settled == [("ack", data)]


async def test_cancelling_the_caller_of_callback_still_cancels(recording_broker, encode):
    started = asyncio.Event()

    @recording_broker.task
    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    receiver = Receiver(recording_broker)
    calling = asyncio.create_task(
        receiver.callback(recording_broker.ackable(encode(recording_broker, forever.task_name)))
    )
    await asyncio.wait_for(started.wait(), 2)
    calling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await calling
    assert recording_broker.settled == []  # left to the broker, as a stopping worker leaves it
    assert not await recording_broker.result_backend.is_result_ready("t1")


@pytest.mark.parametrize("hook", ["pre_execute", "post_execute", "on_error", "post_save"])
async def test_a_middleware_raising_a_base_exception_does_not_stop_the_worker(
    recording_broker, encode, caplog, hook
):
    class Exiting(TaskiqMiddleware):
        pass

    def raise_exit(*args: Any) -> None:
        sys.exit(4)

    setattr(Exiting, hook, raise_exit)
    recording_broker.add_middlewares(Exiting())

    @recording_broker.task
    async def fails() -> None:
        raise ValueError("to reach on_error")

    data = encode(recording_broker, fails.task_name)
    await run_one(recording_broker, data)
    assert "middleware failed" in caplog.text
    result = await result_of(recording_broker)
    assert result.is_err
    if hook == "pre_execute":
        assert isinstance(result.error, TaskExitError)
        assert recording_broker.settled == [("reject", data)]
    else:
        assert isinstance(result.error, ValueError)
        assert recording_broker.settled == [("ack", data)]


async def test_a_dependency_exiting_in_its_teardown_does_not_stop_the_worker(
    recording_broker, encode, caplog
):
    def resource() -> Any:
        yield "res"
        sys.exit(5)

    @recording_broker.task
    async def uses(res: str = TaskiqDepends(resource)) -> str:
        return res

    data = encode(recording_broker, uses.task_name)
    await run_one(recording_broker, data)
    assert (await result_of(recording_broker)).return_value == "res"
    assert recording_broker.settled == [("ack", data)]
    assert "A dependency failed while closing" in caplog.text


async def test_a_formatter_failing_its_own_way_rejects_the_message(recording_broker, caplog):
    class Picky(JSONFormatter):
        def loads(self, message: bytes) -> Any:
            raise ValueError("not for me")

    recording_broker.with_formatter(Picky())
    await run_one(recording_broker, b"{}")
    assert recording_broker.settled == [("reject", b"{}")]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "ValueError('not for me')" in errors[0].getMessage()
