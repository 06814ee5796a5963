"""Fuzzing what the SQLite and Redis result backends read back from their store.

A result is written by a worker and read by a client: anything another process wrote must
come back either as the `TaskiqResult` (or progress report) that was stored, or as a typed
`ResultGetError` — never another exception. Each example stores a few entries under fresh
task ids — real results and progress reports through the backend, interleaved with
arbitrary payloads (random bytes, damaged results, well-formed data of the wrong shape,
deeply nested data) and, for SQLite, rows with values of any SQL type; for Redis, keys of
another type — and reads each back. The serializer (every one taskq has whose extra is
installed) is drawn per entry; pickle entries get garbage without the opcodes that import a
name, since unpickling arbitrary bytes can run code (pickle is only for trusted peers).
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
from taskq_result_backends._codec import encode_progress, encode_result
from taskq_result_backends.sqlite import PROGRESS, RESULTS

#: Entries each example stores and reads back, at least; the tests run
#: ``TASKQ_FUZZ_EXAMPLES / ENTRIES_PER_EXAMPLE`` examples, so as many entries or more in all,
#: written in one transaction (SQLite) or pipeline (Redis) per example.
ENTRIES_PER_EXAMPLE = 5

_profile = settings.get_profile("taskq-fuzz")
FUZZ = settings(
    _profile,
    max_examples=max(1, _profile.max_examples // ENTRIES_PER_EXAMPLE),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: 10000 examples under coverage on a slow machine may take longer than the 120 s the
#: repository's pytest configuration allows one test.
FUZZ_TIMEOUT_S = 600

SERIALIZERS: dict[str, Callable[[], TaskiqSerializer]] = {
    "json": JSONSerializer,
    "orjson": ORJSONSerializer,
    "msgpack": MSGPackSerializer,
    "cbor": CBORSerializer,
    "pickle": PickleSerializer,
}


def _available() -> dict[str, TaskiqSerializer]:
    """An instance of every serializer whose extra is installed."""
    instances = {}
    for name, make in SERIALIZERS.items():
        try:
            instances[name] = make()
        except ImportError:
            continue
    return instances


INSTANCES = _available()

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
            "taskq.TaskiqError",
            "os.path",
            "builtins",
            "",
            ".",
            "no.such.module.Error",
        ]
    )
    # names taskq exports lazily: looking one up must not import its package
    | st.sampled_from(
        [
            "taskq.ZeroMQBroker",
            "taskq.RedisStreamBroker",
            "taskq.InMemoryBroker",
            "taskq.SimpleRetryMiddleware",
            "taskq.PrometheusMiddleware",
            "taskq.TaskiqScheduler",
            "taskq.LabelScheduleSource",
            "taskq.Receiver",
        ]
    )
    | TEXT
)
ERRORS = st.fixed_dictionaries(
    {"type": ERROR_TYPES},
    optional={
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
#: failed results whose error names any type
FAILURES = st.fixed_dictionaries({"is_err": st.just(True), "error": ERRORS})
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


def payloads(name: str, table: str) -> st.SearchStrategy[bytes]:
    """Bytes that are mostly not a stored result (or progress report), some almost one."""
    serializer = INSTANCES[name]
    valid = RESULTS_ if table == "result" else PROGRESSES
    payload = st.one_of(
        st.binary(max_size=48),
        WRONG_SHAPES.map(lambda value: encoded_or_nothing(serializer, value)),
        st.builds(
            damaged,
            valid.map(lambda stored: serializer.dumpb(stored.to_dict())),
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
    if name == "pickle":
        return payload.map(lambda data: bytes(b for b in data if b not in IMPORTING_OPCODES))
    return payload


#: built once: a strategy made during a draw is validated again each time, which is slow
PAYLOADS = {
    (name, table): payloads(name, table) for name in INSTANCES for table in ("result", "progress")
}


@st.composite
def entries(draw: Any, raw_rows: st.SearchStrategy[Any]) -> tuple[str, str, str, Any]:
    """One stored entry: (serializer, "result" or "progress", kind, what) — kind is "valid"
    (what: the result or progress report), "payload" (bytes) or "raw" (a foreign value)."""
    name = draw(st.sampled_from(list(INSTANCES)))
    table = draw(st.sampled_from(["result", "progress"]))
    kind = draw(st.sampled_from(["valid", "payload", "payload", "raw", "failure"]))
    if kind == "failure":  # a failed result whose error is anything: stored as a payload
        failure = encoded_or_nothing(INSTANCES[name], draw(FAILURES))
        return name, "result", "payload", failure
    if kind == "valid":
        return name, table, kind, draw(RESULTS_ if table == "result" else PROGRESSES)
    if kind == "raw":
        return name, table, kind, draw(raw_rows)
    return name, table, kind, draw(PAYLOADS[name, table])


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


def encoded(name: str, table: str, what: Any) -> bytes:
    """A valid result or progress report as the backends encode it."""
    if table == "result":
        return encode_result(INSTANCES[name], "id", what)
    return encode_progress(INSTANCES[name], "id", what)


async def read_all(backends: dict[str, Any], written: list[tuple[str, str, str, str, Any]]) -> None:
    """Read back every written entry, concurrently."""
    await asyncio.gather(
        *(
            check_reads(backends[name], task_id, table, kind, what)
            for name, task_id, table, kind, what in written
        )
    )


# -- SQLite ----------------------------------------------------------------------------------

SQL_VALUES = (
    st.none()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | TEXT
    | st.binary(max_size=16)
)


@pytest.mark.timeout(FUZZ_TIMEOUT_S)
def test_sqlite_reads_back_stored_results_or_a_typed_error(
    sqlite_path: str, loop: asyncio.AbstractEventLoop
) -> None:
    backends = {
        name: SQLiteResultBackend(sqlite_path, serializer=serializer)
        for name, serializer in INSTANCES.items()
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
        @given(st.lists(entries(raw_rows), min_size=ENTRIES_PER_EXAMPLE, max_size=8))
        def store_and_read(stored: list[tuple[str, str, str, Any]]) -> None:
            written, rows = [], {RESULTS: [], PROGRESS: []}
            for name, table, kind, what in stored:
                task_id = f"t{next(ids)}"
                if kind == "valid":
                    row = (encoded(name, table, what), 0.0, None)
                else:
                    row = (what, 0.0, None) if kind == "payload" else what
                rows[RESULTS if table == "result" else PROGRESS].append((task_id, *row))
                written.append((name, task_id, table, kind, what))
            connection.execute("BEGIN")  # one transaction
            for sql_table, table_rows in rows.items():
                connection.executemany(
                    f"INSERT INTO {sql_table} (task_id, payload, stored_at, expires_at)"
                    " VALUES (?, ?, ?, ?)",
                    table_rows,
                )
            connection.execute("COMMIT")
            loop.run_until_complete(read_all(backends, written))

        store_and_read()
    for backend in backends.values():
        loop.run_until_complete(backend.shutdown())


# -- Redis -----------------------------------------------------------------------------------


@pytest.mark.timeout(FUZZ_TIMEOUT_S)
def test_redis_reads_back_stored_results_or_a_typed_error(
    redis_url: str, redis_prefix: str, loop: asyncio.AbstractEventLoop
) -> None:
    import redis.asyncio

    from taskq_result_backends import RedisResultBackend

    backends = {
        name: RedisResultBackend(redis_url, prefix=redis_prefix, serializer=serializer)
        for name, serializer in INSTANCES.items()
    }
    for backend in backends.values():
        loop.run_until_complete(backend.startup())
    client = redis.asyncio.Redis.from_url(redis_url)
    ids = itertools.count()
    # a key of another type than a string: (command, arguments after the key)
    raw_rows = st.sampled_from(
        [("rpush", ["x"]), ("sadd", ["x"]), ("hset", ["f", "v"]), ("zadd", [{"m": 1}])]
    )
    any_backend = backends["json"]

    async def write_all(written: list[tuple[str, str, str, str, Any]]) -> None:
        async with client.pipeline(transaction=False) as pipe:
            for name, task_id, table, kind, what in written:
                if table == "result":
                    key = any_backend.result_key(task_id)
                else:
                    key = any_backend.progress_key(task_id)
                if kind == "valid":
                    pipe.set(key, encoded(name, table, what))
                elif kind == "payload":
                    pipe.set(key, what)
                else:
                    command, arguments = what
                    getattr(pipe, command)(key, *arguments)
            await pipe.execute()

    @FUZZ
    @given(st.lists(entries(raw_rows), min_size=ENTRIES_PER_EXAMPLE, max_size=8))
    def store_and_read(stored: list[tuple[str, str, str, Any]]) -> None:
        written = [(name, f"t{next(ids)}", table, kind, what) for name, table, kind, what in stored]
        loop.run_until_complete(write_all(written))
        loop.run_until_complete(read_all(backends, written))

    store_and_read()
    for backend in backends.values():
        loop.run_until_complete(backend.shutdown())
    loop.run_until_complete(client.aclose())
