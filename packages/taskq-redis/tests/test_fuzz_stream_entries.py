"""Fuzzing the Redis broker's consumer with arbitrary stream entries written into a real stream.

Each example appends a batch of entries to the queue's stream in one pipeline — valid
messages interleaved with entries whose ``m`` field is garbage and entries with other fields
only — then a worker (`Receiver.callback` on what the broker's ``listen()`` yields) consumes
them, up to a valid message appended last. About half the batches are first read by a
consumer that then "dies" (its entries idle past the lease), so they arrive through the
take-over path instead of a plain read. Properties: the worker never stops; each valid
message runs once with its arguments and is deleted; each bad entry is logged once and moved
to the dead letters once; nothing stays pending.

Every example holds at least ``ENTRIES_PER_EXAMPLE`` entries, and the test runs
``TASKQ_FUZZ_EXAMPLES / ENTRIES_PER_EXAMPLE`` examples: ``TASKQ_FUZZ_EXAMPLES`` entries or
more in all, with one Redis round trip per batch rather than per entry.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskq import MessageDecodeError, Receiver, TaskiqMessage
from taskq_redis import RedisStreamBroker

#: Entries in each example, at least (the last one, a valid message, included).
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

RECORD = "fuzz:record"
GROUP = "taskq"
GHOST = "ghost-consumer"

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT
VALUES = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(TEXT, SCALARS, max_size=2)
MESSAGES = st.builds(
    TaskiqMessage,
    task_id=TEXT.filter(bool),
    task_name=st.just(RECORD),
    labels=st.just({}),
    args=st.lists(VALUES, max_size=2),
    kwargs=st.dictionaries(TEXT, VALUES, max_size=2),
)
WRONG_SHAPES = VALUES | st.fixed_dictionaries(
    {},
    optional={
        name: st.sampled_from(["", "t", "fuzz:unknown"]) | VALUES
        for name in ("task_id", "task_name", "labels", "args", "kwargs")
    },
)
NESTING = [b"[", b'{"a":', b"\x91", b"("]
FIELD_NAMES = st.binary(max_size=6).filter(lambda name: name != b"m")


def damaged(data: bytes, how: str, at: int, extra: bytes) -> bytes:
    at %= len(data) + 1
    if how == "truncate":
        return data[:at]
    if how == "flip" and at < len(data):
        return data[:at] + bytes([data[at] ^ (extra[0] if extra else 0xFF)]) + data[at + 1 :]
    return data[:at] + extra + data[at:]  # insert


def entries(encode: Any) -> st.SearchStrategy[dict[bytes, bytes]]:
    """Field-value maps of stream entries: a valid ``m``, a garbage ``m``, or no ``m``."""
    valid = MESSAGES.map(encode)
    garbage = st.one_of(
        st.binary(max_size=32),
        WRONG_SHAPES.map(encode_plain),
        st.builds(
            damaged,
            valid,
            st.sampled_from(["truncate", "flip", "insert"]),
            st.integers(0, 1 << 16),
            st.binary(max_size=4),
        ),
        st.builds(
            lambda opening, depth: opening * depth,
            st.sampled_from(NESTING),
            st.integers(0, 12).map(lambda k: 1 << k),
        ),
    )
    others = st.dictionaries(FIELD_NAMES, st.binary(max_size=16), max_size=2)
    with_m = st.builds(lambda payload, more: {**more, b"m": payload}, valid | garbage, others)
    without_m = st.dictionaries(FIELD_NAMES, st.binary(max_size=16), min_size=1, max_size=3)
    return with_m | with_m | without_m


def encode_plain(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for all examples of a test (hypothesis calls the test body many times)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.mark.timeout(FUZZ_TIMEOUT_S)
def test_the_consumer_runs_valid_entries_once_and_dead_letters_the_rest_once(
    redis_url: str, redis_prefix: str, raw_redis: Any, loop: Any, caplog: Any
) -> None:
    broker = RedisStreamBroker(
        redis_url,
        key_prefix=redis_prefix,
        priority_levels=1,
        reclaim_interval_s=0.001,  # every read looks for expired leases first
        block_ms=100,
    )
    broker.is_worker_process = True
    runs: list[tuple[list[Any], dict[str, Any]]] = []

    @broker.task(task_name=RECORD)
    async def record(*args: Any, **kwargs: Any) -> None:
        runs.append((list(args), kwargs))

    loop.run_until_complete(broker.startup())
    receiver = Receiver(broker)
    listening = broker.listen()
    stream, dead_letters = broker.keys.streams[0], broker.keys.dead_letters
    loop.run_until_complete(broker.create_groups())
    ids = itertools.count()

    def encode(message: TaskiqMessage) -> bytes:
        return broker.formatter.dumps(message).message

    async def append(batch: list[dict[bytes, bytes]], taken_over: bool) -> None:
        async with broker.redis.pipeline(transaction=False) as pipe:
            for fields in batch:
                flat = [item for pair in fields.items() for item in pair]
                pipe.execute_command("XADD", stream, "*", *flat)
            added = await pipe.execute()
        if taken_over:  # read by a consumer that died: idle for an hour
            await broker.redis.xreadgroup(GROUP, GHOST, {stream: ">"}, count=len(batch))
            await broker.redis.xclaim(stream, GROUP, GHOST, 0, added, idle=3_600_000, justid=True)

    async def consume_until(last_task_id: str) -> None:
        while True:
            message = await listening.__anext__()
            await receiver.callback(message)
            if runs and runs[-1] == ([last_task_id], {}):
                return

    caplog.set_level(logging.ERROR)

    @FUZZ
    @given(
        st.lists(entries(encode), min_size=ENTRIES_PER_EXAMPLE - 1, max_size=8),
        st.booleans(),
    )
    def consume(batch: list[dict[bytes, bytes]], taken_over: bool) -> None:
        last = f"last-{next(ids)}"
        batch = [*batch, {b"m": encode(TaskiqMessage(last, RECORD, {}, [last], {}))}]
        expected_runs, bad = [], 0
        for fields in batch:
            try:
                message = broker.formatter.loads(fields[b"m"]) if b"m" in fields else None
            except MessageDecodeError:
                message = None
            if message is not None and message.task_name == RECORD:
                expected_runs.append((message.args, message.kwargs))
            else:
                bad += 1
        dead_before = raw_redis.xlen(dead_letters)
        runs.clear()
        caplog.clear()
        loop.run_until_complete(append(batch, taken_over))
        loop.run_until_complete(asyncio.wait_for(consume_until(last), 30))
        assert runs == expected_runs
        assert len(caplog.records) == bad, [r.getMessage() for r in caplog.records]
        assert raw_redis.xlen(dead_letters) - dead_before == bad

    consume()
    loop.run_until_complete(broker.ack_sender.drain())
    assert raw_redis.xpending(stream, GROUP)["pending"] == 0
    assert raw_redis.xlen(stream) == 0, "acknowledged entries were left in the stream"
    loop.run_until_complete(broker.shutdown())
    loop.run_until_complete(listening.aclose())
    receiver.close()
