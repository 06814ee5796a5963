"""Results, errors across processes, serializers, state, schedules and lazy names."""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys
import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from importlib.metadata import EntryPoint
from typing import Any

import pydantic
import pytest

import taskq
from taskq import (
    AsyncTaskiqTask,
    DummyResultBackend,
    JSONFormatter,
    MessageDecodeError,
    RemoteTaskError,
    ResultBackendError,
    ResultGetError,
    ResultIsReadyError,
    ScheduledTask,
    ScheduleSource,
    SerializationError,
    TaskiqResult,
    TaskiqResultTimeoutError,
    TaskiqState,
    UnknownTaskError,
    gather,
)
from taskq.formatters import SerializerFormatter
from taskq.remote_error import decode_error, encode_error, restore_described_error
from taskq.result import result_of_run
from taskq.serializers import (
    CBORSerializer,
    JSONSerializer,
    MSGPackSerializer,
    ORJSONSerializer,
    PickleSerializer,
)
from taskq_inmemory import InmemoryResultBackend

SERIALIZERS = [
    JSONSerializer,
    MSGPackSerializer,
    CBORSerializer,
    ORJSONSerializer,
    PickleSerializer,
]


class Point(pydantic.BaseModel):
    x: int
    y: int


@dataclass
class Pair:
    a: int
    b: str


@pytest.mark.parametrize("serializer_class", SERIALIZERS)
def test_serializers_round_trip_plain_data(serializer_class):
    serializer = serializer_class()
    value = {"s": "é", "i": 1, "f": 1.5, "l": [1, None, True], "d": {"k": "v"}}
    assert serializer.loadb(serializer.dumpb(value)) == value


@pytest.mark.parametrize("serializer_class", SERIALIZERS[:4])
def test_serializers_encode_rich_types_as_plain_data(serializer_class):
    serializer = serializer_class()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    ident = uuid.UUID(int=7)
    decoded = serializer.loadb(
        serializer.dumpb([Point(x=1, y=2), Pair(1, "b"), Decimal("1.5"), ident, when])
    )
    assert decoded[:2] == [{"x": 1, "y": 2}, {"a": 1, "b": "b"}]
    assert pydantic.TypeAdapter(datetime).validate_python(decoded[4]) == when
    assert pydantic.TypeAdapter(uuid.UUID).validate_python(decoded[3]) == ident


@pytest.mark.parametrize("serializer_class", SERIALIZERS)
def test_serializers_raise_typed_errors(serializer_class):
    serializer = serializer_class()
    with pytest.raises(SerializationError):
        serializer.dumpb(lambda: None)
    with pytest.raises(SerializationError):
        serializer.loadb(b"\xc1\xff\x00garbage")


@pytest.mark.parametrize("serializer_class", SERIALIZERS)
@pytest.mark.parametrize("opening", [b"[", b'{"a":', b" [", b"\x91", b"\x9f", b"("])
def test_data_nested_too_deeply_is_a_typed_decode_error(serializer_class, opening):
    # JSON's decoder raised RecursionError past the interpreter's recursion limit
    with pytest.raises(MessageDecodeError):
        SerializerFormatter(serializer_class()).loads(opening * 100_000)


@pytest.mark.parametrize(
    "data",
    [b'{"a":1}', b' {"a": 1}\n', b"[1,2]", b'"s"', b"NaN", b"1e400", b'{"a":"\\ud800"}'],
)
def test_json_serializer_decodes_what_json_loads_decodes(data):
    expected = json.loads(data)
    decoded = JSONSerializer().loadb(data)
    assert decoded == expected or (decoded != decoded and expected != expected)  # NaN


@pytest.mark.parametrize("data", [b'{"a":1}x', b"", b"[1,2", b"nan", b'{"a":1} {}'])
def test_json_serializer_refuses_what_json_loads_refuses(data):
    with pytest.raises(json.JSONDecodeError):
        json.loads(data)
    with pytest.raises(SerializationError):
        JSONSerializer().loadb(data)


@pytest.mark.parametrize("name", ["builtins.SystemExit", "builtins.KeyboardInterrupt"])
def test_a_stored_error_never_rebuilds_an_exit(name):
    # a result naming SystemExit made raise_for_error() exit the process reading it
    rebuilt = decode_error({"type": name, "message": "3", "args": [3]})
    assert isinstance(rebuilt, RemoteTaskError)
    assert str(rebuilt) == f"{name}: 3"
    described = restore_described_error(
        {"exc_type": name.partition(".")[2], "exc_module": "builtins", "exc_message": [3]}
    )
    assert isinstance(described, RemoteTaskError)


def test_a_described_error_naming_a_lazy_export_imports_nothing(monkeypatch):
    from taskq import _lazy

    monkeypatch.setitem(
        _lazy.announced(), "GhostBroker", EntryPoint("GhostBroker", "taskq_ghost_missing:G", "g")
    )
    rebuilt = restore_described_error(
        {"exc_type": "GhostBroker", "exc_module": "taskq", "exc_message": ["m"]}
    )
    assert isinstance(rebuilt, RemoteTaskError)
    assert "taskq_ghost_missing" not in sys.modules


def test_a_stored_error_naming_a_lazy_export_imports_nothing(monkeypatch):
    # taskq's lazy names were looked up with getattr, which imports the sibling package:
    # a result naming "taskq.ZeroMQBroker" imported taskq_zmq, or raised ImportError when
    # it was not installed
    from taskq import _lazy

    monkeypatch.setitem(
        _lazy.announced(), "GhostBroker", EntryPoint("GhostBroker", "taskq_ghost_missing:G", "g")
    )
    rebuilt = decode_error({"type": "taskq.GhostBroker", "message": "m"})
    assert isinstance(rebuilt, RemoteTaskError)
    assert str(rebuilt) == "taskq.GhostBroker: m"
    assert "taskq_ghost_missing" not in sys.modules


def test_json_formatter_round_trips_messages():
    formatter = JSONFormatter()
    message = taskq.TaskiqMessage("id", "m:f", {"a": 1}, [1, "x"], {"k": [1]})
    encoded = formatter.dumps(message)
    assert (encoded.task_id, encoded.task_name, encoded.labels) == ("id", "m:f", {"a": 1})
    assert formatter.loads(encoded.message) == message


def test_results_round_trip_as_plain_data_with_their_error():
    result = TaskiqResult(
        is_err=True,
        return_value=None,
        execution_time=0.5,
        labels={"l": 1},
        error=UnknownTaskError(task_name="a:b"),
    )
    data = JSONSerializer().loadb(JSONSerializer().dumpb(result.to_dict()))
    back = TaskiqResult.from_dict(data)
    assert back.is_err
    assert back.labels == {"l": 1}
    assert back.execution_time == 0.5
    assert isinstance(back.error, UnknownTaskError)
    assert back.error.task_name == "a:b"
    assert str(back.error) == str(result.error)


def test_errors_of_unknown_or_unloaded_types_become_remote_task_errors():
    class Local(Exception):
        pass

    encoded = encode_error(Local("x"))
    rebuilt = decode_error(encoded)
    assert isinstance(rebuilt, RemoteTaskError)
    assert rebuilt.type_name.endswith("Local")
    assert "x" in str(rebuilt)
    unloaded = decode_error({"type": "not_imported_module.Boom", "message": "m"})
    assert isinstance(unloaded, RemoteTaskError)
    assert "not_imported_module" not in sys.modules
    assert isinstance(
        decode_error({"type": "builtins.ValueError", "message": "v", "args": ["v"]}), ValueError
    )
    # a type whose constructor refuses the stored args still comes back, as a remote error
    assert isinstance(
        decode_error({"type": "builtins.UnicodeDecodeError", "message": "u"}), RemoteTaskError
    )


def test_taskiq_errors_format_templates_and_pickle():
    error = TaskiqResultTimeoutError(timeout=1.5)
    assert "1.5" in str(error)
    assert error.timeout == 1.5
    again = pickle.loads(pickle.dumps(UnknownTaskError(task_name="x")))
    assert isinstance(again, UnknownTaskError)
    assert again.task_name == "x"
    assert str(taskq.TaskiqError("custom")) == "custom"
    assert issubclass(taskq.TaskTimeoutError, TimeoutError)


def test_state_is_a_dict_with_attribute_access():
    state = TaskiqState()
    state.set_value("a", 1)
    state.b = 2
    assert state.get_value("a") == 1
    assert state.b == 2
    assert state.get_value("zz", "d") == "d"
    assert state.keys() == ["a", "b"]
    assert state.values() == [1, 2]
    assert state.items() == [("a", 1), ("b", 2)]
    assert "a" in state
    del state.b
    state.delete_value("missing")
    with pytest.raises(AttributeError):
        _ = state.b
    with pytest.raises(AttributeError):
        del state.b
    state.clear()
    assert state.keys() == []
    assert repr(state) == "TaskiqState({})"


def test_scheduled_task_validates_its_schedule():
    aware = datetime.now(timezone.utc)
    assert ScheduledTask(task_name="t", cron="* * * * *").labels == {}
    assert ScheduledTask(task_name="t", interval=timedelta(seconds=5)).interval_seconds == 5
    assert ScheduledTask(task_name="t", time=aware).interval_seconds == 0
    with pytest.raises(ValueError, match="exactly one"):
        ScheduledTask(task_name="t")
    with pytest.raises(ValueError, match="exactly one"):
        ScheduledTask(task_name="t", cron="* * * * *", interval=5)
    with pytest.raises(ValueError, match="timezone-aware"):
        ScheduledTask(task_name="t", time=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="at least 1 second"):
        ScheduledTask(task_name="t", interval=0.5)
    for never in (float("nan"), float("inf")):  # no next fire: the Schedules page answered 500
        with pytest.raises(ValueError, match="finite"):
            ScheduledTask(task_name="t", interval=never)
    with pytest.raises(ValueError, match="task_name"):
        ScheduledTask(task_name="", interval=5)


async def test_schedule_source_defaults():
    class Fixed(ScheduleSource):
        async def get_schedules(self) -> list[ScheduledTask]:
            return [ScheduledTask(task_name="t", interval=1)]

    source = Fixed()
    await source.startup()
    assert len(await source.get_schedules()) == 1
    with pytest.raises(taskq.TaskiqError, match="cannot add"):
        await source.add_schedule(ScheduledTask(task_name="t", interval=1))
    with pytest.raises(taskq.TaskiqError, match="cannot delete"):
        await source.delete_schedule("x")
    assert source.pre_send(ScheduledTask(task_name="t", interval=1)) is None
    await source.shutdown()


class PollingBackend(InmemoryResultBackend[Any]):
    """A backend without notification: waiting falls back to polling."""

    async def wait_ready(self, task_id: str, timeout: float | None, check_interval: float) -> bool:
        return await taskq.AsyncResultBackend.wait_ready(self, task_id, timeout, check_interval)


async def test_waiting_polls_backends_that_cannot_notify():
    backend = PollingBackend()
    task: AsyncTaskiqTask[int] = AsyncTaskiqTask("p1", backend, int)
    with pytest.raises(TaskiqResultTimeoutError):
        await task.wait_result(check_interval=0.01, timeout=0.03)
    asyncio.get_running_loop().call_later(
        0.02,
        lambda: asyncio.ensure_future(
            backend.set_result("p1", TaskiqResult(is_err=False, return_value="7", execution_time=0))
        ),
    )
    result = await task.wait_result(check_interval=0.01)
    assert result.return_value == 7  # cast to the return annotation


@pytest.mark.parametrize("backend", [PollingBackend(), InmemoryResultBackend()])
@pytest.mark.parametrize("waits", [{"timeout": float("nan")}, {"check_interval": float("nan")}])
async def test_waiting_refuses_a_nan_timeout_or_interval(backend, waits):
    # NaN compares false with everything: the wait had no end, whatever the timeout said
    task: AsyncTaskiqTask[int] = AsyncTaskiqTask("never-sent", backend, int)
    with pytest.raises(ValueError, match="nan"):
        await asyncio.wait_for(task.wait_result(**waits), 10)


async def test_task_handle_wraps_backend_failures_in_typed_errors():
    class Down(DummyResultBackend):
        async def is_result_ready(self, task_id: str) -> bool:
            raise ConnectionError("down")

        async def get_result(self, task_id: str, with_logs: bool = False) -> TaskiqResult[Any]:
            raise ConnectionError("down")

    task: AsyncTaskiqTask[Any] = AsyncTaskiqTask("x", Down())
    with pytest.raises(ResultIsReadyError):
        await task.is_ready()
    with pytest.raises(ResultGetError):
        await task.get_result()
    with pytest.raises(ResultIsReadyError):
        await task.wait_result(timeout=1)
    with pytest.raises(ResultGetError):
        await AsyncTaskiqTask("missing", InmemoryResultBackend()).get_result()


async def test_return_value_that_does_not_fit_its_annotation_is_returned_as_is(caplog):
    backend = InmemoryResultBackend()
    await backend.set_result("r", TaskiqResult(is_err=False, return_value="abc", execution_time=0))
    result = await AsyncTaskiqTask("r", backend, int).get_result()
    assert result.return_value == "abc"
    assert "does not fit" in caplog.text
    point = AsyncTaskiqTask("r", backend, Point)
    await backend.set_result(
        "r", TaskiqResult(is_err=False, return_value={"x": 1, "y": 2}, execution_time=0)
    )
    assert (await point.get_result()).return_value == Point(x=1, y=2)


async def test_dummy_backend_keeps_nothing():
    backend = DummyResultBackend()
    await backend.set_result("x", TaskiqResult(is_err=False, return_value=1, execution_time=0))
    assert await backend.is_result_ready("x")
    assert (await backend.get_result("x")).return_value is None
    with pytest.raises(ResultBackendError, match="progress"):
        await backend.get_progress("x")
    with pytest.raises(ResultBackendError, match="progress"):
        await backend.set_progress("x", taskq.TaskProgress(taskq.TaskState.STARTED))


async def test_gather_returns_results_in_order_and_times_out():
    backend = InmemoryResultBackend()
    tasks = [AsyncTaskiqTask(f"g{i}", backend) for i in range(3)]
    for i in (2, 0, 1):
        await backend.set_result(
            f"g{i}", TaskiqResult(is_err=False, return_value=i, execution_time=0)
        )
    assert [r.return_value for r in await gather(*tasks)] == [0, 1, 2]
    with pytest.raises(TaskiqResultTimeoutError):
        await gather(AsyncTaskiqTask("never", backend), timeout=0.02)


def test_progress_round_trips_as_plain_data():
    progress = taskq.TaskProgress(taskq.TaskState.STARTED, {"done": 3})
    assert taskq.TaskProgress.from_dict(progress.to_dict()) == progress
    custom = taskq.TaskProgress.from_dict({"state": "halfway", "meta": None})
    assert custom.state == "halfway"


def test_lazy_names_resolve_and_missing_packages_say_what_to_install():
    assert taskq.InMemoryBroker.__module__.startswith("taskq_inmemory")
    with pytest.raises(AttributeError):
        _ = taskq.NoSuchName  # type: ignore[attr-defined]
    code = (
        "import sys; sys.modules['taskq_zmq'] = None\n"
        "try:\n    from taskq import ZeroMQBroker\n"
        "except ImportError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install taskq-zmq" in out.stdout


def test_importing_taskq_loads_no_optional_or_heavy_dependency():
    code = (
        "import sys, taskq\n"
        "heavy = {'pydantic', 'msgpack', 'cbor2', 'orjson', 'taskiq_dependencies'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_matches_the_distribution():
    from importlib.metadata import version

    assert taskq.__version__ == version("taskq-core")


@pytest.mark.parametrize("error", [None, ValueError("boom")])
def test_result_of_run_is_the_result_the_class_makes(error: BaseException | None) -> None:
    labels = {"a": 1}
    made = result_of_run(None if error else 42, 0.5, labels, error)
    expected = TaskiqResult(
        is_err=error is not None,
        return_value=None if error else 42,
        execution_time=0.5,
        labels=labels,
        error=error,
    )
    # every field: one added to the class must be added to result_of_run too
    for field in fields(TaskiqResult):
        assert getattr(made, field.name) == getattr(expected, field.name), field.name
    assert made.labels is labels
    assert type(made) is TaskiqResult
