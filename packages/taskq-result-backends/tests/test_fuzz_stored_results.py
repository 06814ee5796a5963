"""Fuzzing what the SQLite and Redis result backends read back from their store.

A result is written by a worker and read by a client: anything another process wrote must
come back either as the `TaskiqResult` (or progress report) that was stored, or as a typed
`ResultGetError` — never another exception. Each example stores a few entries under fresh
task ids — real results and progress reports through the backend, interleaved with
arbitrary payloads (random bytes, damaged results, well-formed data of the wrong shape,
deeply nested data) and, for SQLite, rows with values of any SQL type; for Redis, keys of
another type — and reads each back. The serializer (every one taskq has) is drawn per
entry; pickle entries get garbage without the opcodes that import a name, since unpickling
arbitrary bytes can run code (pickle is only for trusted peers).
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskq import (
    ResultBackendError,
    ResultGetError,
    SerializationError,
    TaskiqError,
    TaskiqResult,
    TaskProgress,
)
from taskq.abc.serializer import TaskiqSerializer
from taskq.serializers import (
    CBORSerializer,
    JSONSerializer,
    MSGPackSerializer,
    ORJSONSerializer,
    PickleSerializer,
)
from taskq_result_backends import SQLiteResultBackend
from taskq_result_backends.sqlite import PROGRESS, RESULTS

FUZZ = settings(
    settings.get_profile("taskq-fuzz"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SERIALIZERS: dict[str, Callable[[], TaskiqSerializer]] = {
    "json": JSONSerializer,
    "orjson": ORJSONSerializer,
    "msgpack": MSGPackSerializer,
    "cbor": CBORSerializer,
    "pickle": PickleSerializer,
}

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)
#: plain values every serializer round-trips exactly
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
VALUES = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(TEXT, SCALARS, max_size=2)

#: exception types a stored error may name: built-ins, taskq's own, lazily exported names
#: that are not exceptions (and may not be installed), modules, nonsense
ERROR_TYPES = (
    st.sampled_from(
        [
            "builtins.ValueError",
            "builtins.KeyError",
            "builtins.UnicodeDecodeError",
            "builtins.SystemExit",
            "builtins.BaseExceptionGroup",
            "taskq.exceptions.TaskiqError",
            "taskq.exceptions.TaskArgumentsError",
            "taskq.exceptions.TaskiqResultTimeoutError",
            "taskq.ZeroMQBroker",
            "taskq.RedisStreamBroker",
            "taskq.InMemoryBroker",
            "taskq.Receiver",
            "taskq.TaskiqError",
            "os.path",
            "builtins",
            "",
            ".",
            "no.such.module.Error",
        ]
    )
    | TEXT
)
ERRORS = st.fixed_dictionaries(
    {},
    optional={
        "type": ERROR_TYPES | VALUES,
        "message": VALUES,
        "args": VALUES,
        "fields": VALUES | st.dictionaries(TEXT, SCALARS, max_size=2),
    },
)
ODD_NUMBERS = st.sampled_from([10**400, -(10**400), "1e999", "nan", "x", [], {}])
FIELD = VALUES | ERRORS | ODD_NUMBERS
WRONG_SHAPES = VALUES | st.fixed_dictionaries(
    {},
    optional={
        "is_err": FIELD,
        "return_value": FIELD,
        "execution_time": FIELD,
        "labels": FIELD | st.lists(st.lists(SCALARS, max_size=3), max_size=2),
        "error": FIELD,
        "log": FIELD,
        "state": FIELD,
        "meta": FIELD,
    },
)
NESTING = [b"[", b'{"a":', b"\x91", b"\x81\xa1a", b"\x9f", b"\x81\x61a", b"("]
#: Pickle opcodes that import a name (GLOBAL, INST, STACK_GLOBAL, EXT1/2/4).
IMPORTING_OPCODES = frozenset(b"ci\x93\x82\x83\x84")

EXCEPTIONS = st.sampled_from(
    [ValueError("bad value"), KeyError("k"), RuntimeError(), TaskiqError("typed", code=3)]
)
RESULTS_ = st.builds(
    TaskiqResult,
    is_err=st.booleans(),
    return_value=VALUES,
    execution_time=st.floats(0, 1e6),
    labels=st.dictionaries(TEXT, SCALARS, max_size=2),
    error=st.none() | EXCEPTIONS,
    log=st.none() | TEXT,
)
PROGRESSES = st.builds(TaskProgress, state=st.sampled_from(["STARTED", "custom"]), meta=VALUES)


def encoded_or_nothing(serializer: TaskiqSerializer, value: Any) -> bytes:
    """``value`` encoded, or no bytes when the serializer cannot (a huge int for orjson)."""
    try:
        return serializer.dumpb(value)
    except SerializationError:
        return b""


def damaged(data: bytes, how: str, at: int, extra: bytes) -> bytes:
    at %= len(data) + 1
    if how == "truncate":
        return data[:at]
    if how == "flip" and at < len(data):
        return data[:at] + bytes([data[at] ^ (extra[0] if extra else 0xFF)]) + data[at + 1 :]
    return data[:at] + extra + data[at:]  # insert


@st.composite
def entries(draw: Any, raw_rows: st.SearchStrategy[Any]) -> tuple[str, str, str, Any]:
    """One stored entry: (serializer, "result" or "progress", kind, what) — kind is "valid"
    (what: the result or progress report), "payload" (bytes) or "raw" (a foreign value)."""
    name = draw(st.sampled_from(list(SERIALIZERS)))
    serializer = SERIALIZERS[name]()
    table = draw(st.sampled_from(["result", "progress"]))
    kind = draw(st.sampled_from(["valid", "payload", "payload", "raw"]))
    if kind == "valid":
        return name, table, kind, draw(RESULTS_ if table == "result" else PROGRESSES)
    if kind == "raw":
        return name, table, kind, draw(raw_rows)
    valid = draw(RESULTS_ if table == "result" else PROGRESSES).to_dict()
    payload = draw(
        st.one_of(
            st.binary(max_size=48),
            WRONG_SHAPES.map(lambda value: encoded_or_nothing(serializer, value)),
            st.builds(
                damaged,
                st.just(serializer.dumpb(valid)),
                st.sampled_from(["truncate", "flip", "insert"]),
                st.integers(0, 1 << 16),
                st.binary(max_size=4),
            ),
            st.builds(
                lambda opening, depth: opening * depth,
                st.sampled_from(NESTING),
                st.integers(0, 13).map(lambda k: 1 << k),
            ),
        )
    )
    if name == "pickle":
        payload = bytes(byte for byte in payload if byte not in IMPORTING_OPCODES)
    return name, table, kind, payload


def same_result(got: TaskiqResult[Any], stored: TaskiqResult[Any]) -> bool:
    return (
        (got.is_err, got.return_value, got.execution_time, got.labels, got.log)
        == (stored.is_err, stored.return_value, stored.execution_time, stored.labels, stored.log)
        and type(got.error) is type(stored.error)
        and str(got.error) == str(stored.error)
    )


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for all examples of a test (hypothesis calls the test body many times)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


async def check_reads(backend: Any, task_id: str, table: str, kind: str, what: Any) -> None:
    """Read back one entry: what was stored, or a typed error; never anything else."""
    try:
        if table == "result":
            assert isinstance(await backend.is_result_ready(task_id), bool)
            got: Any = await backend.get_result(task_id)
        else:
            got = await backend.get_progress(task_id)
    except ResultGetError:
        assert kind != "valid", f"a valid {table} could not be read back"
        return
    except ResultBackendError:
        # e.g. a Redis key of another type: typed, from the backend's error family
        assert kind == "raw"
        return
    if kind == "valid" and table == "result":
        assert same_result(got, what), (got, what)
    elif kind == "valid":
        assert (got.state, got.meta) == (what.state, what.meta)
    elif table == "result":
        assert isinstance(got, TaskiqResult)
    else:
        assert got is None or isinstance(got, TaskProgress)


# -- SQLite ----------------------------------------------------------------------------------

SQL_VALUES = (
    st.none()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | TEXT
    | st.binary(max_size=16)
)


def test_sqlite_reads_back_stored_results_or_a_typed_error(
    sqlite_path: str, loop: asyncio.AbstractEventLoop
) -> None:
    backends = {
        name: SQLiteResultBackend(sqlite_path, serializer=make())
        for name, make in SERIALIZERS.items()
    }
    for backend in backends.values():
        loop.run_until_complete(backend.startup())
    ids = itertools.count()
    # payload and stored_at are NOT NULL columns
    raw_rows = st.tuples(
        SQL_VALUES.filter(lambda v: v is not None),
        SQL_VALUES.filter(lambda v: v is not None),
        SQL_VALUES,
    )

    with closing(sqlite3.connect(sqlite_path, isolation_level=None)) as connection:

        @FUZZ
        @given(st.lists(entries(raw_rows), min_size=1, max_size=3))
        def store_and_read(stored: list[tuple[str, str, str, Any]]) -> None:
            written = []
            for name, table, kind, what in stored:
                task_id = f"t{next(ids)}"
                backend = backends[name]
                if kind == "valid" and table == "result":
                    loop.run_until_complete(backend.set_result(task_id, what))
                elif kind == "valid":
                    loop.run_until_complete(backend.set_progress(task_id, what))
                else:
                    row = (what, 0.0, None) if kind == "payload" else what
                    connection.execute(
                        f"INSERT INTO {RESULTS if table == 'result' else PROGRESS}"
                        " (task_id, payload, stored_at, expires_at) VALUES (?, ?, ?, ?)",
                        (task_id, *row),
                    )
                written.append((backend, task_id, table, kind, what))
            for backend, task_id, table, kind, what in written:
                loop.run_until_complete(check_reads(backend, task_id, table, kind, what))

        store_and_read()
    for backend in backends.values():
        loop.run_until_complete(backend.shutdown())


# -- Redis -----------------------------------------------------------------------------------


def test_redis_reads_back_stored_results_or_a_typed_error(
    redis_url: str, redis_prefix: str, loop: asyncio.AbstractEventLoop
) -> None:
    from taskq_result_backends import RedisResultBackend

    backends = {
        name: RedisResultBackend(redis_url, prefix=redis_prefix, serializer=make())
        for name, make in SERIALIZERS.items()
    }
    for backend in backends.values():
        loop.run_until_complete(backend.startup())
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    ids = itertools.count()
    # a key of another type than a string: (command, arguments after the key)
    raw_rows = st.sampled_from(
        [("rpush", ["x"]), ("sadd", ["x"]), ("hset", ["f", "v"]), ("zadd", [{"m": 1}])]
    )

    async def write_raw(key: str, kind: str, what: Any) -> None:
        if kind == "payload":
            await client.set(key, what)
        else:
            command, arguments = what
            await getattr(client, command)(key, *arguments)

    @FUZZ
    @given(st.lists(entries(raw_rows), min_size=1, max_size=3))
    def store_and_read(stored: list[tuple[str, str, str, Any]]) -> None:
        written = []
        for name, table, kind, what in stored:
            task_id = f"t{next(ids)}"
            backend = backends[name]
            if kind == "valid" and table == "result":
                loop.run_until_complete(backend.set_result(task_id, what))
            elif kind == "valid":
                loop.run_until_complete(backend.set_progress(task_id, what))
            else:
                key = (
                    backend.result_key(task_id)
                    if table == "result"
                    else backend.progress_key(task_id)
                )
                loop.run_until_complete(write_raw(key, kind, what))
            written.append((backend, task_id, table, kind, what))
        for backend, task_id, table, kind, what in written:
            loop.run_until_complete(check_reads(backend, task_id, table, kind, what))

    store_and_read()
    for backend in backends.values():
        loop.run_until_complete(backend.shutdown())
    loop.run_until_complete(client.aclose())
