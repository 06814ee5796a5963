"""Fuzzing message decoding under every serializer, through the receiver.

``TASKQ_FUZZ_EXAMPLES`` examples of two to three inputs each: valid messages interleaved
with garbage (random bytes, damaged valid messages, deeply nested data, well-formed data of
the wrong shape). Each input goes to every serializer at once — a generated message is
encoded by each serializer that carries its values exactly, damage is applied to each
encoding — and then to that serializer's worker: `Receiver.callback` with an in-memory
broker and a result backend that records, as bytes or as text. So each decoder sees at
least ``TASKQ_FUZZ_EXAMPLES`` inputs for the cost of generating them once. Properties:

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
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskq import (
    AsyncBroker,
    AsyncResultBackend,
    MessageDecodeError,
    Receiver,
    SerializationError,
    TaskArgumentsError,
    TaskiqMessage,
    TaskiqResult,
    UnknownTaskError,
)
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
#: 10000 examples under coverage on a slow machine may take longer than the 120 s the
#: repository's pytest configuration allows one test.
FUZZ_TIMEOUT_S = 600

RECORD = "fuzz:record"

#: name -> (serializer, carries bytes, carries infinity); a value a serializer cannot encode
#: at all (an integer beyond 64 bits for orjson and msgpack) is skipped for it by itself
SERIALIZERS = {
    "json": (JSONSerializer, False, True),
    "orjson": (ORJSONSerializer, False, False),
    "msgpack": (MSGPackSerializer, True, True),
    "cbor": (CBORSerializer, True, True),
    "pickle": (PickleSerializer, True, True),
}

# -- generated values ----------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)  # no lone surrogates
#: Plain data, one level of containers (deep nesting is what NESTING garbage is for), no
#: NaN (it is not equal to itself).
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | TEXT
    | st.binary(max_size=6)
)
VALUES = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(TEXT, SCALARS, max_size=2)
MESSAGES = st.builds(
    TaskiqMessage,
    task_id=TEXT.filter(bool),
    task_name=st.just(RECORD),
    labels=st.dictionaries(TEXT.filter(lambda key: key != "timeout"), VALUES, max_size=1),
    args=st.lists(VALUES, max_size=2),
    kwargs=st.dictionaries(TEXT, VALUES, max_size=2),
)


def _carries(value: Any, binary: bool, infinity: bool) -> bool:
    """Whether a serializer with these abilities gives ``value`` back equal."""
    if isinstance(value, bytes):
        return binary
    if isinstance(value, float):
        return infinity or math.isfinite(value)
    if isinstance(value, list):
        return all(_carries(item, binary, infinity) for item in value)
    if isinstance(value, dict):
        return all(_carries(item, binary, infinity) for item in value.values())
    return True


# -- garbage -------------------------------------------------------------------------------

#: Opening bytes of a container in each format; repeated, they nest as deep as one likes.
NESTING = [b"[", b'{"a":', b" [", b"\x91", b"\x81\xa1a", b"\x9f", b"\x81\x61a", b"(", b"]"]

#: Pickle opcodes that import a name (GLOBAL, INST, STACK_GLOBAL, EXT1/2/4): without them a
#: pickle can only build plain data, never call anything.
_IMPORTING_OPCODES = frozenset(b"ci\x93\x82\x83\x84")


def _without_imports(data: bytes) -> bytes:
    return bytes(byte for byte in data if byte not in _IMPORTING_OPCODES)


@dataclass(frozen=True)
class Damage:
    """Truncate, flip a byte, insert or delete bytes, at a position (modulo the length)."""

    how: str
    at: int
    extra: bytes

    def __call__(self, data: bytes) -> bytes:
        at = self.at % (len(data) + 1)
        if self.how == "truncate":
            return data[:at]
        if self.how == "flip" and at < len(data):
            return data[:at] + bytes([data[at] ^ (self.extra[:1] or b"\xff")[0]]) + data[at + 1 :]
        if self.how == "insert":
            return data[:at] + self.extra + data[at:]
        return data[:at] + data[at + len(self.extra) + 1 :]  # delete


FIELD = st.sampled_from(["", "t", "fuzz:unknown", RECORD]) | VALUES
WRONG_SHAPES = VALUES | st.fixed_dictionaries(
    {},
    optional={name: FIELD for name in ("task_id", "task_name", "labels", "args", "kwargs")},
)


@dataclass(frozen=True)
class Input:
    """One generated input: ``raw`` bytes for every serializer, or a ``message`` (valid, or
    damaged by ``damage``), or a value of the wrong ``shape`` encoded by each serializer."""

    raw: bytes | None = None
    message: TaskiqMessage | None = None
    damage: Damage | None = None
    shape: Any = None
    as_text: bool = False


DAMAGES = st.builds(
    Damage,
    st.sampled_from(["truncate", "flip", "insert", "delete"]),
    st.integers(0, 1 << 16),
    st.binary(max_size=4),
)
INPUTS = st.builds(Input, message=MESSAGES, as_text=st.booleans()) | st.one_of(
    st.builds(Input, raw=st.binary(max_size=48), as_text=st.booleans()),
    st.builds(Input, raw=TEXT.map(str.encode)),
    st.builds(
        Input,
        raw=st.builds(
            lambda opening, depth: opening * depth,
            st.sampled_from(NESTING),
            st.integers(0, 13).map(lambda k: 1 << k),  # 1 to 8192 levels
        ),
    ),
    st.builds(Input, shape=WRONG_SHAPES, as_text=st.booleans()),
    st.builds(Input, message=MESSAGES, damage=DAMAGES, as_text=st.booleans()),
)


# -- one worker per serializer ---------------------------------------------------------------


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


@dataclass
class Worker:
    """A serializer's broker, result backend, receiver and record of task runs."""

    name: str
    broker: AsyncBroker
    binary: bool
    infinity: bool
    backend: RecordingResultBackend = field(default_factory=RecordingResultBackend)
    runs: list[tuple[list[Any], dict[str, Any]]] = field(default_factory=list)
    inputs: int = 0

    def __post_init__(self) -> None:
        self.broker.with_result_backend(self.backend)
        runs = self.runs

        @self.broker.task(task_name=RECORD)
        async def record(*args: Any, **kwargs: Any) -> None:
            runs.append((list(args), kwargs))

        self.receiver = Receiver(self.broker)

    def encode(self, item: Input) -> bytes | None:
        """The bytes ``item`` means for this serializer; None when it cannot carry it."""
        serializer = self.broker.serializer
        try:
            if item.raw is not None:
                data = item.raw
            elif item.message is not None:
                message = item.message
                carried = _carries(
                    [message.labels, message.args, message.kwargs], self.binary, self.infinity
                )
                if not carried and item.damage is None:
                    return None
                data = self.broker.formatter.dumps(message).message
                if item.damage is not None:
                    data = item.damage(data)
            else:
                data = serializer.dumpb(item.shape)
        except SerializationError:
            return None
        garbage = item.message is None or item.damage is not None
        return _without_imports(data) if self.name == "pickle" and garbage else data


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


def check_one(worker: Worker, item: Input, data: bytes, loop: Any, caplog: Any) -> None:
    """Give ``data`` to ``worker`` and check what happened against what it decodes to."""
    broker = worker.broker
    named_id: str | None = None  # the task id a message that does not decode still names
    try:
        expected: TaskiqMessage | None = broker.formatter.loads(data)
    except MessageDecodeError as exc:
        expected = None  # any other exception fails the test: the decoder's bug
        named_id = exc.task_id
    if item.message is not None and item.damage is None:
        assert expected == item.message, f"{worker.name}: did not decode back equal"
    delivered: bytes | str = data
    if item.as_text:  # a broker that delivers text; bytes that are not UTF-8 become surrogates
        delivered = data.decode("utf-8", "surrogateescape")
        if not _encodable(delivered):
            expected, named_id = None, None
    caplog.clear()
    worker.runs.clear()
    worker.backend.stored.clear()
    broker.settled.clear()
    loop.run_until_complete(worker.receiver.callback(broker.ackable(delivered)))
    worker.inputs += 1
    problems, settled = _problems(caplog), broker.settled
    where = f"{worker.name}: {delivered!r}"
    if expected is not None and "timeout" in expected.labels:
        assert len(settled) == 1, where  # a timeout label may fail the run: typed, settled once
    elif expected is None:
        assert len(problems) == 1, f"{where}: logged {len(problems)} times"
        assert worker.runs == [], where
        if named_id is None:
            assert worker.backend.stored == [], where
        else:  # the waiting client learns why, under the id the message names
            [(task_id, result)] = worker.backend.stored
            assert (task_id, type(result.error)) == (named_id, MessageDecodeError), where
        assert settled == [("reject", delivered)], where
    elif expected.task_name == RECORD and not all(type(k) is str for k in expected.kwargs):
        # binary formats carry keys of any type: arguments that do not fit
        assert len(problems) == 1, f"{where}: logged {len(problems)} times"
        assert worker.runs == [], where
        [(task_id, result)] = worker.backend.stored
        assert (task_id, type(result.error)) == (expected.task_id, TaskArgumentsError), where
        assert settled == [("ack", delivered)], where
    elif expected.task_name == RECORD:
        assert problems == [], f"{where}: {problems}"
        ran = [(expected.args, expected.kwargs)]
        assert worker.runs == ran or repr(worker.runs) == repr(ran), where  # NaN != NaN
        [(task_id, result)] = worker.backend.stored
        assert (task_id, result.is_err) == (expected.task_id, False), where
        assert settled == [("ack", delivered)], where
    else:
        assert len(problems) == 1, f"{where}: logged {len(problems)} times"
        assert worker.runs == [], where
        [(task_id, result)] = worker.backend.stored
        assert (task_id, type(result.error)) == (expected.task_id, UnknownTaskError), where
        assert settled == [("reject", delivered)], where


@pytest.mark.timeout(FUZZ_TIMEOUT_S)
def test_every_decoder_runs_valid_messages_once_and_rejects_garbage_once(
    make_recording_broker: Any, event_loop_of_test: Any, caplog: Any
) -> None:
    workers = [
        Worker(name, make_recording_broker().with_serializer(make()), binary, infinity)
        for name, (make, binary, infinity) in SERIALIZERS.items()
    ]
    loop = event_loop_of_test
    caplog.set_level(logging.WARNING)

    @FUZZ
    @given(st.lists(INPUTS, min_size=2, max_size=3))
    def receive(inputs: list[Input]) -> None:
        for item in inputs:
            for worker in workers:
                data = worker.encode(item)
                if data is not None:
                    check_one(worker, item, data, loop, caplog)

    receive()
    for worker in workers:
        assert worker.inputs >= FUZZ.max_examples, (worker.name, worker.inputs)
    for worker in workers:  # still working after all that
        worker.runs.clear()
        good = worker.broker.formatter.dumps(TaskiqMessage("last", RECORD, {}, [1], {"k": 2}))
        loop.run_until_complete(worker.receiver.callback(worker.broker.ackable(good.message)))
        assert worker.runs == [([1], {"k": 2})], worker.name
        worker.receiver.close()


async def test_text_that_is_not_unicode_is_rejected_and_logged_once(make_recording_broker, caplog):
    # found by the fuzz test above: encoding the text happened before the receiver's
    # decode step, so the message was neither rejected nor acknowledged
    broker = make_recording_broker()
    await Receiver(broker).callback(broker.ackable("\udc80"))
    assert broker.settled == [("reject", "\udc80")]
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.name for record in errors] == ["taskq.receiver"]
    assert "cannot be decoded" in errors[0].getMessage()
