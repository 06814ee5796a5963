"""Core's event stores, in-memory and SQLite: records, summaries, pages and retention.

The conformance suite runs the whole contract against them too (tox envs conformance-events-*).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from taskq.abc.event_store import AsyncEventStore
from taskq.event_stores import InMemoryEventStore, SQLiteEventStore
from taskq.exceptions import EventStoreError
from taskq.task_events import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_ERROR_TYPE_CHARS,
    MAX_HEARTBEAT_TEXT_CHARS,
    MAX_HOST_CHARS,
    MAX_QUOTED_CHARS,
    MAX_TASK_ID_CHARS,
    MAX_TASK_NAME_CHARS,
    MAX_TRACEBACK_CHARS,
    EventKind,
    Retention,
    TaskEvent,
    TaskQuery,
    WorkerHeartbeat,
    WorkerId,
    bounded_events,
    bounded_heartbeats,
    bounded_rows,
    quoted,
    shortened,
    stored_task_id,
    stored_task_name,
    stored_worker,
)

WORKER = WorkerId("host-a", 10, 1)


NewStore = Callable[..., AsyncEventStore]


@pytest.fixture(params=["memory", "sqlite"])
async def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[NewStore]:
    """Make stores of one kind (``new_store(retention)``); shut down after the test."""
    made: list[AsyncEventStore] = []

    def make(retention: Retention | None = None) -> AsyncEventStore:
        if request.param == "memory":
            store: AsyncEventStore = InMemoryEventStore(retention)
        else:
            store = SQLiteEventStore(tmp_path / f"events-{len(made)}.db", retention)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.shutdown()


def event(kind: EventKind, task_id: str, at: float, **extra: object) -> TaskEvent:
    return TaskEvent(kind, task_id, "tasks:add", WORKER, at, **extra)  # type: ignore[arg-type]


async def test_a_tasks_events_come_back_by_time_and_its_summary_follows_the_latest(
    new_store: NewStore,
) -> None:
    store = new_store()
    now = time.time()
    late = event(EventKind.SUCCEEDED, "t1", now + 2, duration=0.5)
    early = event(EventKind.RECEIVED, "t1", now)
    await store.write([late, early])
    assert await store.task_events("t1") == [early, late]
    page = await store.tasks()
    assert [(t.task_id, t.state, t.first_time, t.duration) for t in page.tasks] == [
        ("t1", EventKind.SUCCEEDED, now, 0.5)
    ]


async def test_pages_continue_where_the_cursor_says(new_store: NewStore) -> None:
    store = new_store()
    now = time.time()
    await store.write([event(EventKind.SENT, f"t{i}", now + i) for i in range(5)])
    first = await store.tasks(TaskQuery(limit=2))
    second = await store.tasks(TaskQuery(limit=2, cursor=first.cursor))
    third = await store.tasks(TaskQuery(limit=2, cursor=second.cursor))
    ids = [t.task_id for page in (first, second, third) for t in page.tasks]
    assert ids == ["t4", "t3", "t2", "t1", "t0"]
    assert third.cursor is None


async def test_a_nan_time_or_cursor_is_refused(new_store: NewStore) -> None:
    # NaN bounds nothing: the SQLite and in-memory stores matched no task, Redis refused it
    # with its own message
    store = new_store()
    await store.write([event(EventKind.SENT, "t0", time.time())])
    for bounds in ({"since": float("nan")}, {"until": float("nan")}):
        with pytest.raises(EventStoreError, match="are times"):
            TaskQuery(**bounds)
    with pytest.raises(EventStoreError, match="not a task page cursor"):
        await store.tasks(TaskQuery(cursor="nan|t0"))
    assert (await store.tasks(TaskQuery(cursor="inf|t0"))).tasks != []


async def test_retention_drops_the_oldest_tasks_whole(new_store: NewStore) -> None:
    store = new_store(Retention(max_events=4))
    now = time.time()
    for i in range(4):
        await store.write(
            [event(EventKind.RECEIVED, f"t{i}", now + i), event(EventKind.FAILED, f"t{i}", now + i)]
        )
    assert [t.task_id for t in (await store.tasks()).tasks] == ["t3", "t2"]
    assert await store.task_events("t0") == []
    assert [f.task_id for f in await store.failures()] == ["t3", "t2"]


async def test_old_heartbeats_and_rates_age_out(new_store: NewStore) -> None:
    store = new_store(Retention(max_age=60))
    now = time.time()
    beat = WorkerHeartbeat(WORKER, now - 120, now - 300, "B", "q", 4, 0, 1, 0, "0")
    await store.write([event(EventKind.SUCCEEDED, "t", now - 120)], [beat])
    assert await store.workers(stale_after=10) == []
    assert sum(rate.count(EventKind.SUCCEEDED) for rate in await store.rates(5)) == 0


def test_bad_settings_and_data_raise_the_event_store_error() -> None:
    with pytest.raises(EventStoreError):
        Retention(max_events=0)
    with pytest.raises(EventStoreError):
        TaskEvent.from_dict({"kind": "exploded"})
    with pytest.raises(EventStoreError):
        WorkerId.parse("no-pid")
    assert WorkerId.parse(str(WORKER)) == WORKER


# the error quoted the whole data, and the error its refused value: 5 MB of data, 5 MB messages
@pytest.mark.parametrize("field", ["kind", "time", "error_message", "an_unknown_field"])
def test_a_task_event_that_is_not_one_is_refused_in_a_short_message(field: str) -> None:
    data = event(EventKind.FAILED, "t1", time.time()).as_dict()
    huge = "x" * 5_000_000
    if field == "an_unknown_field":
        data[huge] = 1
    else:
        data[field] = huge if field != "error_message" else [huge]
    with pytest.raises(EventStoreError, match="not a task event") as refused:
        TaskEvent.from_dict(data)
    assert len(str(refused.value)) < 3 * MAX_QUOTED_CHARS, len(str(refused.value))


@pytest.mark.parametrize("field", ["broker", "time", "an_unknown_field"])
def test_a_heartbeat_that_is_not_one_is_refused_in_a_short_message(field: str) -> None:
    now = time.time()
    data = WorkerHeartbeat(WORKER, now, now - 300, "B", "q", 4, 0, 1, 0, "0").as_dict()
    huge = "x" * 5_000_000
    if field == "an_unknown_field":
        data[huge] = 1
    else:
        data[field] = huge if field == "time" else [huge]
    with pytest.raises(EventStoreError, match="not a worker heartbeat") as refused:
        WorkerHeartbeat.from_dict(data)
    assert len(str(refused.value)) < 3 * MAX_QUOTED_CHARS, len(str(refused.value))


async def test_a_late_earlier_event_keeps_the_tasks_failures(new_store: NewStore) -> None:
    store = new_store(Retention(max_events=3))
    now = time.time()
    await store.write([event(EventKind.FAILED, "t1", now)])
    await store.write([event(EventKind.SENT, "t1", now - 1)])  # arrives late, happened first
    await store.write([event(EventKind.SENT, "t2", now - 10), event(EventKind.SENT, "t3", now + 1)])
    assert [f.task_id for f in await store.failures()] == ["t1"]


def test_the_conformance_factories_give_one_sqlite_file_per_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from taskq.event_stores import conformance

    monkeypatch.setenv(conformance.SQLITE_PATH_ENV, "")  # unset, and restored after the test
    first, second = conformance.make_sqlite_store(), conformance.make_sqlite_store()
    assert first.path == second.path
    monkeypatch.setenv(conformance.SQLITE_PATH_ENV, str(tmp_path / "chosen.db"))
    assert conformance.make_sqlite_store().path == str(tmp_path / "chosen.db")
    assert isinstance(conformance.make_memory_store(), InMemoryEventStore)


async def test_a_query_naming_its_state_and_worker_as_text_reads_them(
    new_store: NewStore,
) -> None:
    # TaskQuery(state="failed") found the tasks in memory, and raised AttributeError in SQLite
    store = new_store()
    now = time.time()
    await store.write([event(EventKind.FAILED, "t1", now), event(EventKind.SUCCEEDED, "t2", now)])
    page = await store.tasks(TaskQuery(state="failed", worker=str(WORKER)))  # type: ignore[arg-type]
    assert [task.task_id for task in page.tasks] == ["t1"]
    for bad in ({"state": "done"}, {"worker": "nobody"}, {"limit": 2.5}, {"limit": True}):
        with pytest.raises(EventStoreError):
            TaskQuery(**bad)  # type: ignore[arg-type]


async def test_a_huge_task_id_and_name_are_kept_shortened_and_found_by_the_whole(
    new_store: NewStore, tmp_path: Path
) -> None:
    # a message with a 5 MB task id made each store keep those 5 MB with each of the task's
    # events and in each index (Redis: ~24 MB for one task, its name in a key's name)
    store = new_store()
    now = time.time()
    big, twin = "i" * 1_000_000, "i" * 999_999 + "j"  # differ in their last character only
    name = "n" * 1_000_000
    await store.write([TaskEvent(EventKind.SENT, big, name, WORKER, now)])
    await store.write_rows(
        WORKER,
        [
            (EventKind.RECEIVED.value, big, name, now + 1, ()),
            (EventKind.FAILED.value, twin, name, now + 2, (("error_type", "E"),)),
        ],
    )
    events = await store.task_events(big)
    assert [e.kind for e in events] == [EventKind.SENT, EventKind.RECEIVED]
    assert {(e.task_id, e.task_name) for e in events} == {
        (stored_task_id(big), stored_task_name(name))
    }
    assert await store.task_events(stored_task_id(big)) == events
    assert [e.kind for e in await store.task_events(twin)] == [EventKind.FAILED]
    page = await store.tasks(TaskQuery(name=name))
    assert [t.task_id for t in page.tasks] == [stored_task_id(twin), stored_task_id(big)]
    assert [f.task_id for f in await store.failures()] == [stored_task_id(twin)]
    if isinstance(store, SQLiteEventStore):
        with sqlite3.connect(store.path) as connection:
            (longest,) = connection.execute(
                "SELECT max(length(task_id) + length(data)) FROM taskq_events"
            ).fetchone()
        assert longest < 2 * (MAX_TASK_ID_CHARS + MAX_TASK_NAME_CHARS)


async def test_huge_error_texts_and_host_names_from_any_writer_are_kept_bounded(
    new_store: NewStore,
) -> None:
    # the recorder cuts what it records, but a store took any length from another writer: a
    # script's 10 MB error message or traceback was kept whole (twice: with its task and
    # among the failures), and so was a host name of any length
    store = new_store()
    now = time.time()
    host = "h" * 1_000_000
    worker = WorkerId(host, 7, 0)
    message, trace = "m" * 10_000_000, "t" * 9_999_999 + "T"
    error_type = "E" * 1_000_000
    details = (("error_type", error_type), ("error_message", message), ("traceback", trace))
    beat = WorkerHeartbeat(worker, now, now, "B", "q", 1, 0, 0, 1, "0")
    await store.write_rows(
        worker, [(EventKind.FAILED.value, "t1", "tasks:x", now, details)], [beat]
    )
    await store.write(
        [TaskEvent(EventKind.REJECTED, "t2", "tasks:x", worker, now + 1, **dict(details))]
    )
    kept_worker = WorkerId(shortened(host, MAX_HOST_CHARS), 7, 0)
    for task_id in ("t1", "t2"):
        (kept,) = await store.task_events(task_id)
        assert kept.worker == kept_worker
        assert kept.error_type == shortened(error_type, MAX_ERROR_TYPE_CHARS)
        assert kept.error_message == message[:MAX_ERROR_MESSAGE_CHARS]
        assert kept.traceback == trace[-MAX_TRACEBACK_CHARS:]  # the end: where it was raised
    (failure,) = await store.failures()
    assert len(failure.error_message or "") == MAX_ERROR_MESSAGE_CHARS
    page = await store.tasks(TaskQuery(worker=worker))  # the whole worker id finds them
    assert [(t.task_id, len(t.error_message or "")) for t in page.tasks] == [
        ("t2", MAX_ERROR_MESSAGE_CHARS),
        ("t1", MAX_ERROR_MESSAGE_CHARS),
    ]
    (status,) = await store.workers(stale_after=60, now=now)
    assert status.heartbeat.worker == kept_worker
    if isinstance(store, SQLiteEventStore):
        with sqlite3.connect(store.path) as connection:
            (longest,) = connection.execute("SELECT max(length(data)) FROM taskq_events").fetchone()
            (beat_size,) = connection.execute("SELECT length(data) FROM taskq_workers").fetchone()
        assert longest < 3 * (MAX_ERROR_MESSAGE_CHARS + MAX_TRACEBACK_CHARS)
        assert beat_size < 2 * MAX_HOST_CHARS + 500


def test_a_batch_that_needs_no_bounding_is_handed_back_as_it_is() -> None:
    row = (EventKind.FAILED.value, "t1", "tasks:x", 1.0, (("error_message", "x" * 8192),))
    rows = [row, (EventKind.SUCCEEDED.value, "t2", "tasks:x", 1.0, (("duration", 0.5),))]
    assert bounded_rows(rows) is rows
    events = [TaskEvent.from_row(WORKER, one) for one in rows]
    assert bounded_events(events) is events
    beats = [WorkerHeartbeat(WORKER, 1.0, 1.0, "B", "q", 1, 0, 0, 0, "0")]
    assert bounded_heartbeats(beats) is beats
    # fields that are not the bounded texts are left as they are, whatever their length
    sent = (EventKind.SENT.value, "t3", "tasks:x", 1.0, (("message", b"m" * 100_000),))
    long_message = (EventKind.FAILED.value, "t4", "tasks:x", 1.0, (("error_message", "x" * 9000),))
    assert bounded_rows([sent, long_message]) == [
        sent,
        (EventKind.FAILED.value, "t4", "tasks:x", 1.0, (("error_message", "x" * 8192),)),
    ]
    assert stored_worker(WORKER) is WORKER
    long_host = WorkerId("h" * 300, 1, 0)
    assert len(stored_worker(long_host).host) == MAX_HOST_CHARS
    assert stored_worker(stored_worker(long_host)) == stored_worker(long_host)
    assert WorkerId.parse(str(stored_worker(long_host))) == stored_worker(long_host)


def test_a_shortened_text_keeps_its_beginning_and_a_digest_of_the_whole() -> None:
    assert stored_task_id("a" * MAX_TASK_ID_CHARS) == "a" * MAX_TASK_ID_CHARS
    long_id, long_name = "x" * (MAX_TASK_ID_CHARS + 1), "y" * (MAX_TASK_NAME_CHARS + 1)
    kept = stored_task_id(long_id)
    assert len(kept) == MAX_TASK_ID_CHARS
    assert kept.startswith("x" * 400)
    assert stored_task_id(kept) == kept, "shortening a shortened id changes nothing"
    assert len(stored_task_name(long_name)) == MAX_TASK_NAME_CHARS
    assert stored_task_id(long_id + "z") != kept
    assert shortened("\ud800" * 20, 10) != shortened("\udc00" * 20, 10)  # lone surrogates


async def test_a_heartbeats_huge_broker_queue_and_version_are_kept_shortened(
    new_store: NewStore,
) -> None:
    # a writer of its own could send a 1 MB queue name: kept whole, and `taskq status` and
    # the dashboard printed it whole
    store = new_store()
    now = time.time()
    broker, queue, version = "B" * 1_000_000, "q" * 1_000_000, "v" * 999_999 + "w"
    beat = WorkerHeartbeat(WORKER, now, now, broker, queue, 1, 0, 0, 0, version)
    await store.write([], [beat])
    (status,) = await store.workers(stale_after=60, now=now)
    kept = status.heartbeat
    assert (kept.broker, kept.queue, kept.version) == (
        shortened(broker, MAX_HEARTBEAT_TEXT_CHARS),
        shortened(queue, MAX_HEARTBEAT_TEXT_CHARS),
        shortened(version, MAX_HEARTBEAT_TEXT_CHARS),
    )
    assert len(kept.queue) == MAX_HEARTBEAT_TEXT_CHARS
    other = WorkerHeartbeat(WorkerId("host-b", 1, 0), now, now, "B", "q", 1, 0, 0, 0, "1.0")
    await store.write_rows(other.worker, [], [other])
    statuses = await store.workers(stale_after=60, now=now)
    assert other in [s.heartbeat for s in statuses]  # short ones are kept as they are


async def test_a_retrys_huge_new_task_id_is_kept_as_that_tasks_id_is(new_store: NewStore) -> None:
    # the retried event named the new task by its whole id: a 5 MB id was kept whole with the
    # event, while the new task's own events are kept under `stored_task_id`
    store = new_store()
    now = time.time()
    new_id = "n" * 5_000_000
    retried = event(EventKind.RETRIED, "t1", now, new_task_id=new_id)
    await store.write([retried])
    await store.write_rows(
        WORKER, [event(EventKind.RETRIED, "t2", now, new_task_id=new_id).as_row()]
    )
    await store.write([event(EventKind.SENT, new_id, now + 1)])
    for task_id in ("t1", "t2"):
        (kept,) = await store.task_events(task_id)
        assert kept.new_task_id == stored_task_id(new_id)
        # the id the event names finds the new task
        assert [e.kind for e in await store.task_events(kept.new_task_id)] == [EventKind.SENT]
    assert bounded_events([event(EventKind.RETRIED, "t3", now, new_task_id="short")])[0] == (
        event(EventKind.RETRIED, "t3", now, new_task_id="short")
    )


def test_a_quoted_value_is_its_repr_shortened() -> None:
    assert quoted("many") == "'many'"
    assert quoted(3.5) == "3.5"
    long = quoted("x" * 5_000_000)
    assert len(long) == MAX_QUOTED_CHARS
    assert long.startswith("'xxx")
    assert long != quoted("x" * 4_999_999 + "y")
    assert len(quoted(["k"] * 1_000_000, 100)) == 100
