"""Fuzzing message decoding under every serializer, through the receiver.

For each serializer, ``TASKQ_FUZZ_EXAMPLES`` examples of one to two inputs each: valid
messages interleaved with garbage (random bytes, damaged valid messages, deeply nested data,
well-formed data of the wrong shape), given to `Receiver.callback` one by one, as bytes or
as text, with an in-memory broker and a result backend that records. Properties:

- any message the formatter encodes decodes back equal;
- the formatter decodes an input or raises `MessageDecodeError`, nothing else;
- each valid message runs once with its arguments and is acknowledged;
- each bad input is logged once and rejected, with a failed result stored when its task id
  is known; the receiver never raises and goes on.

Pickle is fuzzed with garbage that contains none of the opcodes that import a name (see
`_without_imports`): unpickling arbitrary bytes can run code, which is why pickle is opt-in
and only for trusted producers, but garbage without those opcodes must still be rejected
cleanly rather than break the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from taskq import (
    AsyncResultBackend,
    MessageDecodeError,
    Receiver,
    TaskArgumentsError,
    TaskiqMessage,
    TaskiqResult,
    UnknownTaskError,
)
from taskq.abc.serializer import TaskiqSerializer
from taskq.formatters import SerializerFormatter
from taskq.serializers import (
    CBORSerializer,
    JSONSerializer,
    MSGPackSerializer,
    ORJSONSerializer,
    PickleSerializer,
)

FUZZ = settings(
    settings.get_profile("taskq-fuzz"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

RECORD = "fuzz:record"

# -- values each serializer carries exactly ------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)  # no lone surrogates
INT64 = st.integers(-(2**63), 2**63 - 1)
ANY_INT = st.integers() | INT64


def plain(ints: st.SearchStrategy[int], infinity: bool, binary: bool) -> st.SearchStrategy[Any]:
    """Plain data a serializer round-trips exactly: no NaN (it is not equal to itself).

    One level of containers only: deep nesting is exercised by the garbage (see NESTING),
    and every level of generated structure costs time in each of the many examples.
    """
    scalars = st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=infinity)
    scalars = scalars | TEXT
    if binary:
        scalars = scalars | st.binary(max_size=6)
    return scalars | st.lists(scalars, max_size=3) | st.dictionaries(TEXT, scalars, max_size=2)


#: name -> (serializer factory, the plain data it round-trips)
SERIALIZERS: dict[str, tuple[Callable[[], TaskiqSerializer], st.SearchStrategy[Any]]] = {
    "json": (JSONSerializer, plain(ANY_INT, infinity=True, binary=False)),
    "orjson": (ORJSONSerializer, plain(INT64, infinity=False, binary=False)),
    "msgpack": (MSGPackSerializer, plain(INT64, infinity=True, binary=True)),
    "cbor": (CBORSerializer, plain(ANY_INT, infinity=True, binary=True)),
    "pickle": (PickleSerializer, plain(ANY_INT, infinity=True, binary=True)),
}


def messages(values: st.SearchStrategy[Any], task_name: st.SearchStrategy[str]) -> Any:
    """Messages with generated ids, labels and arguments (no ``timeout`` label)."""
    return st.builds(
        TaskiqMessage,
        task_id=TEXT.filter(bool),
        task_name=task_name,
        labels=st.dictionaries(TEXT.filter(lambda key: key != "timeout"), values, max_size=1),
        args=st.lists(values, max_size=2),
        kwargs=st.dictionaries(TEXT, values, max_size=2),
    )


# -- garbage -------------------------------------------------------------------------------

#: Opening bytes of a container in each format; repeated, they nest as deep as one likes.
NESTING = [b"[", b'{"a":', b"\x91", b"\x81\xa1a", b"\x9f", b"\x81\x61a", b"(", b"]"]

#: Pickle opcodes that import a name (GLOBAL, INST, STACK_GLOBAL, EXT1/2/4): without them a
#: pickle can only build plain data, never call anything.
_IMPORTING_OPCODES = frozenset(b"ci\x93\x82\x83\x84")


def _without_imports(data: bytes) -> bytes:
    return bytes(byte for byte in data if byte not in _IMPORTING_OPCODES)


def _damaged(data: bytes, how: str, at: int, extra: bytes) -> bytes:
    at %= len(data) + 1
    if how == "truncate":
        return data[:at]
    if how == "flip" and at < len(data):
        return data[:at] + bytes([data[at] ^ (extra[0] if extra else 0xFF)]) + data[at + 1 :]
    if how == "insert":
        return data[:at] + extra + data[at:]
    return data[:at] + data[at + len(extra) + 1 :]  # delete


def garbage(serializer: TaskiqSerializer, values: st.SearchStrategy[Any]) -> Any:
    """Bytes that are mostly not a message, some of them almost one."""
    field = st.sampled_from(["", "t", "fuzz:unknown", RECORD]) | values
    wrong_shapes = values | st.fixed_dictionaries(
        {},
        optional={
            "task_id": field,
            "task_name": field,
            "labels": field,
            "args": field,
            "kwargs": field,
        },
    )
    damaged_messages = st.builds(
        _damaged,
        messages(values, st.just(RECORD)).map(
            lambda m: SerializerFormatter(serializer).dumps(m).message
        ),
        st.sampled_from(["truncate", "flip", "insert", "delete"]),
        st.integers(0, 1 << 16),
        st.binary(max_size=4),
    )
    nested = st.builds(
        lambda opening, depth: opening * depth,
        st.sampled_from(NESTING),
        st.integers(0, 13).map(lambda k: 1 << k),  # 1 to 8192 levels
    )
    return st.one_of(
        st.binary(max_size=48),
        TEXT.map(str.encode),
        wrong_shapes.map(serializer.dumpb),
        damaged_messages,
        nested,
    )


# -- the receiver's world: a broker fed by hand and a backend that records -----------------


class RecordingResultBackend(AsyncResultBackend[Any]):
    """Keeps every stored result, in order."""

    def __init__(self) -> None:
        self.stored: list[tuple[str, TaskiqResult[Any]]] = []

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        self.stored.append((task_id, result))

    async def is_result_ready(self, task_id: str) -> bool:
        return any(stored_id == task_id for stored_id, _ in self.stored)

    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[Any]:
        return next(result for stored_id, result in reversed(self.stored) if stored_id == task_id)


@pytest.fixture
def event_loop_of_test() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for all examples of a test (hypothesis calls the test body many times)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _problems(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


@pytest.mark.parametrize("name", list(SERIALIZERS))
def test_valid_messages_round_trip_and_run_once_garbage_is_rejected_once(
    name: str, make_recording_broker: Any, event_loop_of_test: Any, caplog: Any
) -> None:
    make, values = SERIALIZERS[name]
    serializer = make()
    broker = make_recording_broker().with_serializer(serializer)
    backend = RecordingResultBackend()
    broker.with_result_backend(backend)
    runs: list[tuple[list[Any], dict[str, Any]]] = []

    @broker.task(task_name=RECORD)
    async def record(*args: Any, **kwargs: Any) -> None:
        runs.append((list(args), kwargs))

    receiver = Receiver(broker)
    loop = event_loop_of_test
    valid = messages(values, st.just(RECORD)).map(lambda m: (m, broker.formatter.dumps(m).message))
    bad = garbage(serializer, values)
    if name == "pickle":
        bad = bad.map(_without_imports)
    bad = bad.map(lambda data: (None, data))
    caplog.set_level(logging.WARNING)

    @FUZZ
    @given(st.lists(st.tuples(valid | bad, st.booleans()), min_size=1, max_size=2))
    def receive(inputs: list[tuple[tuple[TaskiqMessage | None, bytes], bool]]) -> None:
        for (sent, data), as_text in inputs:
            try:
                expected: TaskiqMessage | None = broker.formatter.loads(data)
            except MessageDecodeError:
                expected = None  # any other exception fails the test: the decoder's bug
            if sent is not None:
                assert expected == sent, "a message did not decode back equal"
            delivered: bytes | str = data
            if as_text:  # a broker that delivers text; bytes that are not UTF-8 become surrogates
                delivered = data.decode("utf-8", "surrogateescape")
                if not _encodable(delivered):
                    expected = None
            # a `timeout` label that is not a number fails the run: not what is checked here
            assume(expected is None or "timeout" not in expected.labels)
            caplog.clear()
            runs.clear()
            backend.stored.clear()
            broker.settled.clear()
            loop.run_until_complete(receiver.callback(broker.ackable(delivered)))
            problems = _problems(caplog)
            if expected is None:
                assert len(problems) == 1, f"{data!r}: logged {len(problems)} times"
                assert (runs, backend.stored) == ([], [])
                assert broker.settled == [("reject", delivered)]
            elif expected.task_name == RECORD and not all(type(k) is str for k in expected.kwargs):
                # binary formats carry keys of any type: arguments that do not fit
                assert len(problems) == 1, f"{data!r}: logged {len(problems)} times"
                assert runs == []
                [(task_id, result)] = backend.stored
                assert task_id == expected.task_id
                assert isinstance(result.error, TaskArgumentsError)
                assert broker.settled == [("ack", delivered)]
            elif expected.task_name == RECORD:
                assert problems == [], f"{data!r}: {problems}"
                assert runs == [(expected.args, expected.kwargs)]
                assert [task_id for task_id, _ in backend.stored] == [expected.task_id]
                assert not backend.stored[0][1].is_err
                assert broker.settled == [("ack", delivered)]
            else:
                assert len(problems) == 1, f"{data!r}: logged {len(problems)} times"
                assert runs == []
                [(task_id, result)] = backend.stored
                assert task_id == expected.task_id
                assert isinstance(result.error, UnknownTaskError)
                assert broker.settled == [("reject", delivered)]

    receive()
    # still working after all that
    runs.clear()
    good = broker.formatter.dumps(TaskiqMessage("last", RECORD, {}, [1], {"k": 2})).message
    loop.run_until_complete(receiver.callback(broker.ackable(good)))
    assert runs == [([1], {"k": 2})]
    receiver.close()


async def test_text_that_is_not_unicode_is_rejected_and_logged_once(make_recording_broker, caplog):
    # found by the fuzz test above: encoding the text happened before the receiver's
    # decode step, so the message was neither rejected nor acknowledged
    broker = make_recording_broker()
    await Receiver(broker).callback(broker.ackable("\udc80"))
    assert broker.settled == [("reject", "\udc80")]
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.name for record in errors] == ["taskq.receiver"]
    assert "cannot be decoded" in errors[0].getMessage()
