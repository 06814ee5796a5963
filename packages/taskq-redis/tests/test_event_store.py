"""RedisEventStore beyond the conformance suite: key isolation and outages."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import redis

from taskq.event_recorder import EventRecorder
from taskq.exceptions import EventStoreError
from taskq.task_events import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_ERROR_TYPE_CHARS,
    MAX_HEARTBEAT_TEXT_CHARS,
    MAX_HOST_CHARS,
    MAX_TASK_ID_CHARS,
    MAX_TASK_NAME_CHARS,
    MAX_TRACEBACK_CHARS,
    EventKind,
    Retention,
    TaskEvent,
    TaskQuery,
    WorkerHeartbeat,
    WorkerId,
    bounded_heartbeats,
    stored_task_id,
    stored_task_name,
    stored_worker,
)
from taskq.testing import eventually
from taskq_redis.errors import EventStoreUnavailableError, RedisUnavailableError
from taskq_redis.event_store import MAX_AGE_S, RedisEventStore, from_url

WORKER = WorkerId("host", 1, 0)
#: A heartbeat as the store keeps it.
BEAT = WorkerHeartbeat(WORKER, 0.0, 0.0, "B", "q", 1, 0, 0, 0, "0").as_dict()


async def test_every_key_is_under_the_prefix_and_prefixes_share_nothing(
    redis_url: str, redis_prefix: str, raw_redis: Any
) -> None:
    store = RedisEventStore(redis_url, prefix=redis_prefix)
    other = RedisEventStore(redis_url, prefix=f"{redis_prefix}-other")
    await store.startup()
    try:
        now, task_id = time.time(), f"task-{uuid.uuid4().hex}"
        await store.write(
            [TaskEvent(EventKind.FAILED, task_id, "tasks:x", WORKER, now, error_type="E")],
            [WorkerHeartbeat(WORKER, now, now, "B", "q", 1, 0, 0, 1, "0")],
        )
        keys = [key.decode() for key in raw_redis.scan_iter(match="*")]
        ours = [key for key in keys if task_id in key or key.startswith(redis_prefix)]
        assert ours, "the store wrote nothing"
        assert all(key.startswith(f"{redis_prefix}:") for key in ours)
        assert await other.task_events(task_id) == []
        assert await other.failures() == []
        assert await other.workers(stale_after=60) == []
    finally:
        await store.shutdown()
        await other.shutdown()


async def test_the_longest_max_age_keeps_the_rates_of_a_finished_task(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisEventStore(redis_url, prefix=redis_prefix, retention=Retention(max_age=MAX_AGE_S))
    try:
        now = time.time()
        await store.write([TaskEvent(EventKind.SUCCEEDED, "t1", "t", WORKER, now)])
        rates = await store.rates(1, now=now)
        assert [rate.count(EventKind.SUCCEEDED) for rate in rates] == [1]
    finally:
        await store.shutdown()


async def test_an_unreachable_server_raises_the_typed_error() -> None:
    store = RedisEventStore("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    with pytest.raises(EventStoreUnavailableError) as caught:
        await store.startup()
    assert isinstance(caught.value, EventStoreError)
    assert isinstance(caught.value, RedisUnavailableError)
    await store.shutdown()


async def test_a_refused_write_says_what_it_was_recording(own_redis_url: str) -> None:
    store = RedisEventStore(own_redis_url)
    await store.startup()
    try:
        now = time.time()
        beat = WorkerHeartbeat(WORKER, now, now, "B", "q", 1, 0, 0, 1, "0")
        event = TaskEvent(EventKind.SUCCEEDED, "t1", "t", WORKER, now)
        with redis.Redis.from_url(own_redis_url) as admin:
            admin.config_set("maxmemory", 1)
        writes = {
            "record 1 worker heartbeat:": ([], [beat]),  # said "record 0 events"
            "record 2 events:": ([event, event], []),
            "record 1 event and 1 worker heartbeat:": ([event], [beat]),
        }
        for said, (events, beats) in writes.items():
            with pytest.raises(EventStoreError, match=f"cannot {said} .* OOM"):
                await store.write(events, beats)
    finally:
        await store.shutdown()


async def test_a_task_with_many_events_in_one_batch_is_kept_and_dropped_whole(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisEventStore(redis_url, prefix=redis_prefix, retention=Retention(max_events=1500))
    try:
        now = time.time()
        many = [
            TaskEvent(EventKind.FAILED if i % 2 else EventKind.RETRIED, "big", "t", WORKER, now + i)
            for i in range(1200)
        ]
        await store.write(many)
        assert await store.task_events("big") == many
        await store.write([TaskEvent(EventKind.SENT, "t1", "t", WORKER, now + 2000)] * 400)
        assert await store.task_events("big") == []
        assert await store.failures() == []
        assert len(await store.task_events("t1")) == 400
    finally:
        await store.shutdown()


async def test_the_latest_failures_by_the_thousands_and_none(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisEventStore(redis_url, prefix=redis_prefix)
    try:
        now = time.time()
        failed = [
            TaskEvent(EventKind.FAILED, f"t{i}", "t", WORKER, now + i, error_message=str(i))
            for i in range(2500)
        ]
        await store.write(failed)
        assert await store.failures(0) == []
        assert await store.failures(2400) == failed[:99:-1]  # newest first, in read chunks
        assert await store.failures(3000) == failed[::-1]
    finally:
        await store.shutdown()


async def test_queries_pages_rates_workers_and_age(redis_url: str, redis_prefix: str) -> None:
    store = from_url(f"{redis_url}?prefix={redis_prefix}&max_age=3600")
    assert store.retention == Retention(max_age=3600)
    other = WorkerId("host", 2, 1)
    now = time.time()
    try:
        await store.write(
            [
                TaskEvent(EventKind.SUCCEEDED, "a", "n1", WORKER, now),
                TaskEvent(EventKind.FAILED, "b", "n1", other, now + 1),
                TaskEvent(EventKind.SUCCEEDED, "c", "n2", WORKER, now + 1),
                TaskEvent(EventKind.SENT, "old", "n1", WORKER, now - 7200),
            ],
            [WorkerHeartbeat(other, now - 100, now, "B", "q", 1, 0, 0, 0, "0")],
        )
        first = await store.tasks(TaskQuery(limit=2))
        second = await store.tasks(TaskQuery(limit=2, cursor=first.cursor))
        assert [t.task_id for t in first.tasks + second.tasks] == ["c", "b", "a"]
        assert second.cursor is None
        assert [t.task_id for t in (await store.tasks(TaskQuery(name="n1"))).tasks] == ["b", "a"]
        assert [t.task_id for t in (await store.tasks(TaskQuery(worker=other))).tasks] == ["b"]
        until = await store.tasks(TaskQuery(since=now, until=now + 1))
        assert [t.task_id for t in until.tasks] == ["a"]
        rates = await store.rates(2, now=now + 1)
        assert sum(rate.count(EventKind.SUCCEEDED, EventKind.FAILED) for rate in rates) == 3
        assert [(w.heartbeat.worker, w.alive) for w in await store.workers(30, now=now)] == [
            (other, False)
        ]
        assert await store.task_events("old") == []
    finally:
        await store.shutdown()


async def test_a_task_leaves_the_indexes_of_its_earlier_state_and_worker(
    redis_url: str, redis_prefix: str, raw_redis: Any
) -> None:
    store = RedisEventStore(redis_url, prefix=redis_prefix)
    await store.startup()
    try:
        now, other = time.time(), WorkerId("elsewhere", 2, 1)
        await store.write([TaskEvent(EventKind.SENT, "t", "job", WORKER, now)])
        await store.write_rows(
            other,
            [
                ("received", "t", "job", now + 1, ()),
                ("failed", "t", "job", now + 2, (("duration", 0.5), ("error_type", "E"))),
            ],
        )
        await store.write_rows(WORKER, [("retried", "t", "job", now + 0.5, ())])

        def members(*parts: str) -> list[bytes]:
            return raw_redis.zrange(":".join((redis_prefix, *parts)), 0, -1)

        assert members("state", "sent") == []
        assert members("worker", str(WORKER)) == []
        assert members("state", "failed") == [b"t"]
        assert members("worker", str(other)) == [b"t"]
        (summary,) = (await store.tasks()).tasks
        assert (summary.state, summary.worker, summary.first_time) == (EventKind.FAILED, other, now)
        assert summary.error_type == "E"
        assert summary.duration == 0.5
        kinds = [event.kind for event in await store.task_events("t")]
        assert kinds == ["sent", "retried", "received", "failed"]
        (failure,) = await store.failures()
        assert (failure.worker, failure.time) == (other, now + 2)
    finally:
        await store.shutdown()


def test_the_stored_json_is_the_standard_encoders() -> None:
    """Stores written before and after the encoder was made once per process read alike."""
    import base64
    import json

    from taskq_redis.event_store import _standard_json

    for value in _JSON_VALUES:
        expected = json.dumps(
            value,
            separators=(",", ":"),
            default=lambda b: base64.b64encode(b).decode(),
        )
        assert _standard_json(value) == expected


def test_orjson_writes_what_the_standard_encoder_reads_back() -> None:
    import json

    pytest.importorskip("orjson")
    from taskq_redis.event_store import _orjson_encoders, _standard_json

    encoders = _orjson_encoders(_standard_json)
    assert encoders is not None
    encode, encode_bytes = encoders
    for value in [*_JSON_VALUES, [2**70, "big"]]:
        assert json.loads(encode(value)) == json.loads(_standard_json(value))
        assert json.loads(encode_bytes(value)) == json.loads(_standard_json(value))
    with pytest.raises(TypeError):
        encode([object()])
    with pytest.raises(TypeError):
        encode_bytes([object()])


_ROW = ("sent", "t-1", "tâches:x", 1796457846.6410766, (("message", b"\x00\xff"), ("n", 3)))
_JSON_VALUES: list[Any] = [
    [["host:1:0", _ROW]],
    'naïve\n"quoted"',
    [1.5, None, True, {"k": 2}, 1e-05],
]


async def test_a_line_holds_the_worker_and_name_once_and_events_that_differ_whole(
    redis_url: str, redis_prefix: str, raw_redis: Any
) -> None:
    store = RedisEventStore(redis_url, prefix=redis_prefix)
    other = WorkerId("elsewhere", 2, 1)
    now, task_id = time.time(), f"task-{uuid.uuid4().hex}"
    events = [
        TaskEvent(EventKind.RECEIVED, task_id, "tasks:x", WORKER, now),
        TaskEvent(EventKind.STARTED, task_id, "tasks:x", WORKER, now + 1),
        TaskEvent(EventKind.REJECTED, task_id, "", other, now + 1, error_type="E"),
        TaskEvent(EventKind.SUCCEEDED, task_id, "tasks:x", WORKER, now + 2, duration=0.5),
    ]
    try:
        await store.write(events)
        assert await store.task_events(task_id) == events
        (summary,) = (await store.tasks(TaskQuery(name="tasks:x", since=now))).tasks
        assert (summary.state, summary.worker, summary.duration) == (
            EventKind.SUCCEEDED,
            WORKER,
            0.5,
        )
        header, line = raw_redis.hget(f"{redis_prefix}:task", task_id).decode().split("\n")
        assert header.split("\t")[1:5] == ["succeeded", '"tasks:x"', f'"{WORKER}"', "4"]
        assert task_id not in line, "the task id is the hash field, not repeated in its events"
        assert line.count(str(WORKER)) == 1, "the line's worker is written once"
        assert line.count(str(other)) == 1, "an event of another worker names it"
    finally:
        await store.shutdown()


async def test_lines_of_the_earlier_layout_read_back(
    redis_url: str, redis_prefix: str, raw_redis: Any
) -> None:
    """A store written before events were kept as ``[worker, name, event, ...]`` reads alike."""
    store = RedisEventStore(redis_url, prefix=redis_prefix)
    now = time.time()
    row = ["failed", "old", "tasks:x", now, [["duration", 0.5], ["error_type", "E"]]]
    earlier = json.dumps(
        [[str(WORKER), ["sent", "old", "tasks:x", now - 1, []]], [str(WORKER), row]]
    )
    header = f'{now!r}\tfailed\t"tasks:x"\t"{WORKER}"\t2\t\n'
    raw_redis.hset(f"{redis_prefix}:task", "old", header + earlier)
    try:
        await store.write(
            [TaskEvent(EventKind.RETRIED, "old", "tasks:x", WORKER, now + 1, retry=1)]
        )
        assert await store.task_events("old") == [
            TaskEvent(EventKind.SENT, "old", "tasks:x", WORKER, now - 1),
            TaskEvent(EventKind.FAILED, "old", "tasks:x", WORKER, now, 0.5, "E"),
            TaskEvent(EventKind.RETRIED, "old", "tasks:x", WORKER, now + 1, retry=1),
        ]
    finally:
        await store.shutdown()


async def test_a_store_with_the_index_of_every_task_drops_it_and_reads_alike(
    redis_url: str, redis_prefix: str, raw_redis: Any
) -> None:
    """``P:tasks``, which the store used to keep, goes at the next write; queries still work."""
    store = RedisEventStore(redis_url, prefix=redis_prefix, retention=Retention(max_events=3))
    now = time.time()
    raw_redis.zadd(f"{redis_prefix}:tasks", {"old": now - 10})
    try:
        await store.write(
            [
                TaskEvent(EventKind.SUCCEEDED, "a", "t", WORKER, now - 3),
                TaskEvent(EventKind.FAILED, "b", "t", WORKER, now - 2),
                TaskEvent(EventKind.STARTED, "c", "t", WORKER, now - 1),
            ]
        )
        assert not raw_redis.exists(f"{redis_prefix}:tasks")
        first = await store.tasks(TaskQuery(limit=2))
        assert [task.task_id for task in first.tasks] == ["c", "b"]
        rest = await store.tasks(TaskQuery(limit=2, cursor=first.cursor))
        assert [task.task_id for task in rest.tasks] == ["a"]
        assert rest.cursor is None
        # past the bound, the oldest tasks go whatever their state: "a", then "b"
        await store.write(
            [
                TaskEvent(EventKind.SENT, "d", "t", WORKER, now),
                TaskEvent(EventKind.RECEIVED, "d", "t", WORKER, now + 0.5),
            ]
        )
        page = await store.tasks()
        assert [task.task_id for task in page.tasks] == ["d", "c"]
        assert await store.failures() == []
    finally:
        await store.shutdown()


@pytest.mark.parametrize(
    ("key", "field", "value", "read"),
    [
        ("task", "t1", b"not a header\n{not json", "task_events"),
        ("task", "t1", b"a header and no event", "tasks"),
        ("task", "t1", b"header\n42", "tasks"),
        ("workers", "h:1:0", b"{not json", "workers"),
        ("workers", "h:1:0", json.dumps({**BEAT, "time": "yesterday"}).encode(), "workers"),
        ("workers", "h:1:0", json.dumps({**BEAT, "time": float("nan")}).encode(), "workers"),
        ("minute", "bogus", b"3", "rates"),
        ("minute", "failed", b"many", "rates"),
        ("failed", "0000000000000001", b"{not json", "failures"),
        ("failed", "0000000000000001", b"[1]", "failures"),
        ("failed", "0000000000000001", b'["h:1:0", ["failed", "t1", "x", "noon", []]]', "failures"),
    ],
)
async def test_data_the_store_did_not_write_is_an_event_store_error(
    redis_url: str, redis_prefix: str, raw_redis: Any, key: str, field: str, value: bytes, read: str
) -> None:
    # edited by hand, or by another program: a typed error naming what is wrong, not a
    # ValueError or TypeError from inside the store (a raw traceback in `taskq status`)
    now = time.time()
    store = RedisEventStore(redis_url, prefix=redis_prefix)
    if key == "minute":
        key = f"minute:{int(now // 60) * 60}"
    raw_redis.hset(f"{redis_prefix}:{key}", field, value)
    raw_redis.zadd(f"{redis_prefix}:state:failed", {"t1": now})
    raw_redis.zadd(f"{redis_prefix}:failures", {"0000000000000001": now})
    calls = {
        "task_events": lambda: store.task_events("t1"),
        "tasks": lambda: store.tasks(),
        "workers": lambda: store.workers(stale_after=30),
        "rates": lambda: store.rates(2, now=now),
        "failures": lambda: store.failures(),
    }
    try:
        with pytest.raises(
            EventStoreError,
            match=r"not as taskq writes it|not a worker heartbeat|not a stored task event",
        ):
            await calls[read]()
    finally:
        await store.shutdown()


async def test_a_task_id_redis_scripts_cannot_decode_is_recorded_escaped_not_retried_forever(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisEventStore(redis_url, prefix=redis_prefix)
    await store.startup()
    recorder = EventRecorder(store, WORKER, flush_interval_s=0.01)
    recorder.start()
    try:
        recorder.record(EventKind.RECEIVED, "t-\ud800", "app:\udcff")  # as read from JSON
        recorder.record(EventKind.SUCCEEDED, "t-next", "app:load", duration=0.1)
        await eventually(lambda: store.task_events("t-next"), what="the later event stored")
        (received,) = await store.task_events("t-\\ud800")
        assert received.task_name == "app:\\udcff"
        with pytest.raises(EventStoreError):
            await store.task_events("t-\ud800")
        with pytest.raises(EventStoreError):
            await store.tasks(TaskQuery(name="app:\udcff"))
    finally:
        await recorder.close()
        await store.shutdown()


async def test_a_huge_task_id_and_name_leave_kilobytes_not_megabytes(
    redis_url: str, redis_prefix: str, raw_redis: Any
) -> None:
    # a 5 MB task id took 24 MB of the store (the task hash and three indexes each held it),
    # a 5 MB name 18 MB more (the task's value, and ``P:name:<name>``: the name in a key's name)
    store = RedisEventStore(redis_url, prefix=redis_prefix)
    big_id, big_name = "i" * 5_000_000, "n" * 5_000_000
    try:
        await store.write([TaskEvent(EventKind.SENT, big_id, big_name, WORKER, time.time())])
        await store.write_rows(
            WORKER,
            [
                (kind.value, big_id, big_name, time.time(), ())
                for kind in (EventKind.RECEIVED, EventKind.STARTED, EventKind.SUCCEEDED)
            ],
        )
        events = await store.task_events(big_id)
        assert len(events) == 4
        assert {(e.task_id, e.task_name) for e in events} == {
            (stored_task_id(big_id), stored_task_name(big_name))
        }
        (task,) = (await store.tasks(TaskQuery(name=big_name))).tasks
        assert task.task_id == stored_task_id(big_id)
        keys = list(raw_redis.scan_iter(match=f"{redis_prefix}:*"))
        assert max(len(key) for key in keys) < len(redis_prefix) + 20 + MAX_TASK_NAME_CHARS
        used = sum(raw_redis.memory_usage(key, samples=0) for key in keys)
        assert used < 16 * (MAX_TASK_ID_CHARS + MAX_TASK_NAME_CHARS) + 20_000, f"{used} bytes"
    finally:
        await store.shutdown()


async def test_huge_error_texts_and_a_huge_host_name_leave_kilobytes_not_megabytes(
    redis_url: str, redis_prefix: str, raw_redis: Any
) -> None:
    # a writer other than taskq's recorder (a script) could hand the store a 10 MB error
    # message and traceback (kept whole, twice: with the task and among the failures) and a
    # host name of any length (kept whole in the worker index's key name and the heartbeats)
    store = RedisEventStore(redis_url, prefix=redis_prefix)
    worker = WorkerId("h" * 1_000_000, 1, 0)
    texts = {"error_type": "E" * 1_000_000, "error_message": "m" * 10_000_000}
    trace = "t" * 10_000_000
    try:
        now = time.time()
        beat = WorkerHeartbeat(worker, now, now, "B", "q", 1, 0, 0, 1, "0")
        await store.write([TaskEvent(EventKind.FAILED, "t1", "x", worker, now, **texts)], [beat])
        row = (EventKind.FAILED.value, "t2", "x", now + 1, (*texts.items(), ("traceback", trace)))
        await store.write_rows(worker, [row])
        (second,) = await store.task_events("t2")
        assert second.worker == stored_worker(worker)
        assert second.error_message == texts["error_message"][:MAX_ERROR_MESSAGE_CHARS]
        assert second.traceback == trace[-MAX_TRACEBACK_CHARS:]
        types = [f.error_type or "" for f in await store.failures()]
        assert [len(error_type) for error_type in types] == [MAX_ERROR_TYPE_CHARS] * 2
        (status,) = await store.workers(stale_after=60, now=now)
        assert status.heartbeat.worker == stored_worker(worker)
        keys = list(raw_redis.scan_iter(match=f"{redis_prefix}:*"))
        assert max(len(key) for key in keys) < len(redis_prefix) + 20 + MAX_HOST_CHARS
        used = sum(raw_redis.memory_usage(key, samples=0) for key in keys)
        assert used < 8 * (MAX_ERROR_MESSAGE_CHARS + MAX_TRACEBACK_CHARS) + 20_000, f"{used} bytes"
    finally:
        await store.shutdown()


async def test_a_heartbeats_huge_texts_and_a_retrys_huge_new_id_leave_kilobytes(
    redis_url: str, redis_prefix: str, raw_redis: Any
) -> None:
    # a writer of its own could send a 1 MB broker, queue and version in a heartbeat (3.1 MB of
    # Redis, printed whole by `taskq status`) and a retried event naming a 5 MB new task id
    # (5.2 MB of Redis)
    store = RedisEventStore(redis_url, prefix=redis_prefix)
    worker = WorkerId("host", 1, 0)
    try:
        now = time.time()
        big = "x" * 1_000_000
        beat = WorkerHeartbeat(worker, now, now, "B" + big, "q" + big, 1, 0, 0, 1, "v" + big)
        new_id = "n" * 5_000_000
        retried = TaskEvent(EventKind.RETRIED, "t1", "x", worker, now, new_task_id=new_id)
        await store.write([retried], [beat])
        (status,) = await store.workers(stale_after=60, now=now)
        assert status.heartbeat == bounded_heartbeats([beat])[0]
        assert len(status.heartbeat.queue) == MAX_HEARTBEAT_TEXT_CHARS
        (kept,) = await store.task_events("t1")
        assert kept.new_task_id == stored_task_id(new_id)
        keys = list(raw_redis.scan_iter(match=f"{redis_prefix}:*"))
        used = sum(raw_redis.memory_usage(key, samples=0) for key in keys)
        assert used < 20_000, f"{used} bytes"
    finally:
        await store.shutdown()
