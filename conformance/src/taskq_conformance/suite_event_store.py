"""The event store suite: ordering per task, each query, retention, several writer processes.

The stores a factory makes in one run may share one store (they must, for ``cross_process``):
each check uses task ids and names of its own, and events later than any the suite wrote before,
so what earlier checks left behind does not change its answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
import uuid
from typing import Any

import pytest

from taskq import AsyncEventStore, Capability
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
    TaskSummary,
    WorkerHeartbeat,
    WorkerId,
    bounded_heartbeats,
    minute_of,
    shortened,
    stored_task_id,
    stored_task_name,
    stored_worker,
)
from taskq_conformance.instances import FACTORY_CONTRACT, NewEventStore, run_in_another_process
from taskq_conformance.targets import Target

#: Seconds a child process may take to write its events.
CHILD_TIMEOUT = 60.0
#: Writer processes in the cross-process check, and the batches each writes.
WRITERS, BATCHES = 3, 10
WORKER = WorkerId("conformance-host", 4242, 1)

_reserved = [time.time()]


def later(span: float = 10) -> float:
    """A wall-clock time later than any the suite used before, with ``span`` seconds after it."""
    start = max(time.time(), _reserved[0])
    _reserved[0] = start + span + 1
    return start


def new_id(what: str = "task") -> str:
    """An id no other check uses."""
    return f"conformance-{what}-{uuid.uuid4().hex}"


def event(kind: EventKind, task_id: str, at: float, name: str = "tasks:add", **extra: Any) -> Any:
    """A task event recorded by `WORKER` unless ``worker=`` says otherwise."""
    worker = extra.pop("worker", WORKER)
    return TaskEvent(kind, task_id, name, worker, at, **extra)


def heartbeat(worker: WorkerId, at: float, processed: int = 0) -> WorkerHeartbeat:
    """A heartbeat of ``worker`` sent at ``at``."""
    return WorkerHeartbeat(worker, at, at - 60, "Broker", "queue", 4, 1, processed, 0, "0")


async def all_tasks(store: AsyncEventStore, query: TaskQuery) -> list[TaskSummary]:
    """Every task matching ``query``, following the cursor page by page."""
    found: list[TaskSummary] = []
    while True:
        page = await store.tasks(query)
        found.extend(page.tasks)
        if page.cursor is None:
            return found
        query = dataclasses.replace(query, cursor=page.cursor)


# -- mandatory -------------------------------------------------------------------------------


async def test_the_store_is_an_event_store(taskq_new_event_store: NewEventStore) -> None:
    async with taskq_new_event_store() as store:
        assert isinstance(store, AsyncEventStore), "the factory must make an AsyncEventStore"


async def test_a_tasks_events_come_back_in_order(taskq_new_event_store: NewEventStore) -> None:
    async with taskq_new_event_store() as store:
        task_id, start = new_id(), later()
        sent = event(EventKind.SENT, task_id, start)
        received = event(EventKind.RECEIVED, task_id, start + 0.25)
        started = event(EventKind.STARTED, task_id, start + 0.25)  # same time: write order
        retried = event(EventKind.RETRIED, task_id, start + 0.5, retry=1, retry_delay=2.0)
        failed = event(
            EventKind.FAILED,
            task_id,
            start + 0.5,
            duration=0.2,
            error_type="ValueError",
            error_message="bad input",
        )
        succeeded = event(EventKind.SUCCEEDED, task_id, start + 3, duration=0.1)
        await store.write([received, started, failed, retried])
        # Another process's batch arrives late, holding an earlier and a later event.
        await store.write([sent, succeeded])
        events = await store.task_events(task_id)
        assert events == [sent, received, started, failed, retried, succeeded], (
            "a task's events must come back by time, ties in write order, every field intact"
        )
        assert await store.task_events(new_id()) == [], "an unknown task has no events"


async def test_rows_are_kept_as_the_events_they_stand_for(
    taskq_new_event_store: NewEventStore,
) -> None:
    async with taskq_new_event_store() as store:
        task_id, start = new_id(), later()
        events = [
            event(EventKind.RECEIVED, task_id, start + 1),
            event(EventKind.STARTED, task_id, start + 1),
            event(EventKind.RETRIED, task_id, start + 2, retry=1, retry_delay=0.5),
            event(EventKind.FAILED, task_id, start + 3, duration=0.25, error_type="E"),
        ]
        await store.write([event(EventKind.SENT, task_id, start + 4)])  # a late-written sender
        await store.write_rows(WORKER, [item.as_row() for item in events])
        assert await store.task_events(task_id) == [
            *events,
            event(EventKind.SENT, task_id, start + 4),
        ], "write_rows must keep the events its rows stand for, as write does"
        (summary,) = await all_tasks(store, TaskQuery(name="tasks:add", since=start))
        assert (summary.state, summary.last_time) == (EventKind.SENT, start + 4)
        assert (await store.failures(1))[0] == events[3], "a failed row is a failure"


async def test_a_batch_with_a_time_that_is_not_a_number_is_refused_whole(
    taskq_new_event_store: NewEventStore,
) -> None:
    async with taskq_new_event_store() as store:
        task_id, start = new_id(), later()
        sent = event(EventKind.SENT, task_id, start)
        for bad in (math.nan, math.inf):
            received = event(EventKind.RECEIVED, task_id, bad)
            with pytest.raises(EventStoreError):
                await store.write([sent, received])
            with pytest.raises(EventStoreError):
                await store.write_rows(WORKER, [sent.as_row(), received.as_row()])
        for bad in (math.nan, math.inf):
            beat = dataclasses.replace(heartbeat(WORKER, start), time=bad)
            with pytest.raises(EventStoreError):
                await store.write([sent], [beat])
        assert await store.task_events(task_id) == [], "a refused batch must leave nothing"
        await store.write([sent])
        assert await store.task_events(task_id) == [sent], "the store must go on after it"


async def test_sent_messages_and_retry_links_are_kept_byte_for_byte(
    taskq_new_event_store: NewEventStore,
) -> None:
    async with taskq_new_event_store() as store:
        task_id, again_id, start = new_id(), new_id(), later()
        message = bytes(range(256)) + b'{"args": ["<script>"]}\n|'
        events = [
            event(EventKind.SENT, task_id, start, message=message, message_size=len(message)),
            event(EventKind.FAILED, task_id, start + 1, duration=0.1, error_type="E"),
            event(EventKind.RETRIED, task_id, start + 2, new_task_id=again_id),
        ]
        too_big = event(EventKind.SENT, again_id, start + 2, message_size=10**6)
        await store.write(events[:2])
        await store.write_rows(WORKER, [events[2].as_row(), too_big.as_row()])
        assert await store.task_events(task_id) == events, (
            "a sent event's message must come back byte for byte, and a retried event's "
            "new_task_id as written"
        )
        assert await store.task_events(again_id) == [too_big]
        (summary,) = await all_tasks(store, TaskQuery(state=EventKind.SENT, since=start + 2))
        assert summary.task_id == again_id, "a task whose latest event is sent is in state sent"


async def test_a_task_id_or_name_too_long_is_kept_shortened(
    taskq_new_event_store: NewEventStore,
) -> None:
    async with taskq_new_event_store() as store:
        start, prefix = later(), new_id()
        # 100,000 characters each, alike but for their last one
        long_id = prefix + "i" * (100_000 - len(prefix))
        twin_id = long_id[:-1] + "j"
        long_name = new_id("name") + "n" * 100_000
        sent = event(EventKind.SENT, long_id, start, long_name)
        failed = event(EventKind.FAILED, twin_id, start + 1, long_name, error_type="E")
        await store.write([sent])
        await store.write_rows(WORKER, [failed.as_row()])
        kept_id, kept_twin = stored_task_id(long_id), stored_task_id(twin_id)
        kept_name = stored_task_name(long_name)
        expected = [dataclasses.replace(sent, task_id=kept_id, task_name=kept_name)]
        assert await store.task_events(long_id) == expected, (
            f"a task id longer than {MAX_TASK_ID_CHARS} characters (a name longer than "
            f"{MAX_TASK_NAME_CHARS}) must be kept as "
            "taskq.task_events.stored_task_id and stored_task_name shorten it (a store keeps "
            "an id several times: a message with a 5 MB id must not cost it megabytes)"
        )
        assert await store.task_events(kept_id) == expected, "the kept id must find the task"
        assert [e.task_id for e in await store.task_events(twin_id)] == [kept_twin], (
            "two long ids that differ only at their end must stay two tasks"
        )
        found = await all_tasks(store, TaskQuery(name=long_name))
        assert [t.task_id for t in found] == [kept_twin, kept_id], (
            "a query for the whole name must find the tasks kept under the shortened one"
        )


async def test_texts_too_long_are_kept_bounded(
    taskq_new_event_store: NewEventStore,
) -> None:
    async with taskq_new_event_store() as store:
        start, written_id, rows_id, retried_id = later(), new_id(), new_id(), new_id()
        # what a writer other than taskq's recorder may hand over: 100,000 characters each
        host = new_id("host") + "h" * 100_000
        worker = WorkerId(host, 4242, 1)
        error_type = new_id("Error") + "E" * 100_000
        message = "m" * 50_000 + "M" * 50_000  # its beginning is kept
        trace = "t" * 50_000 + "T" * 50_000  # its end is kept
        texts = {"error_type": error_type, "error_message": message, "traceback": trace}
        failed = event(EventKind.FAILED, written_id, start, duration=0.5, worker=worker, **texts)
        rejected = event(EventKind.REJECTED, rows_id, start + 1, worker=worker, **texts)
        again_id = new_id("again") + "a" * 100_000
        retried = event(EventKind.RETRIED, retried_id, start + 2, new_task_id=again_id)
        beat = dataclasses.replace(
            heartbeat(worker, start),
            broker=new_id("Broker") + "B" * 100_000,
            queue=new_id("queue") + "q" * 100_000,
            version=new_id("version") + "v" * 100_000,
        )
        await store.write([failed, retried], [beat])
        await store.write_rows(worker, [rejected.as_row()])
        bounded = {
            "worker": stored_worker(worker),
            "error_type": shortened(error_type, MAX_ERROR_TYPE_CHARS),
            "error_message": message[:MAX_ERROR_MESSAGE_CHARS],
            "traceback": trace[-MAX_TRACEBACK_CHARS:],
        }
        kept = dataclasses.replace(failed, **bounded)
        assert await store.task_events(written_id) == [kept], (
            f"an error type longer than {MAX_ERROR_TYPE_CHARS} characters, an error message "
            f"longer than {MAX_ERROR_MESSAGE_CHARS}, a traceback longer than "
            f"{MAX_TRACEBACK_CHARS} and a host name longer than {MAX_HOST_CHARS} must be kept "
            "as taskq.task_events.bounded_events keeps them (the type and the host shortened, "
            "the message's beginning, the traceback's end), whoever writes them: a script "
            "writing a 10 MB error message must not cost the store megabytes"
        )
        assert await store.task_events(retried_id) == [
            dataclasses.replace(retried, new_task_id=stored_task_id(again_id))
        ], (
            f"a retried event's new_task_id longer than {MAX_TASK_ID_CHARS} characters must be "
            "kept as taskq.task_events.stored_task_id keeps the new task's own id"
        )
        assert await store.task_events(rows_id) == [dataclasses.replace(rejected, **bounded)], (
            "rows given to write_rows must be kept bounded as events given to write are"
        )
        failures = [f for f in await store.failures() if f.task_id == written_id]
        assert failures == [kept], "a failure must be kept bounded as its event is"
        found = await all_tasks(store, TaskQuery(worker=worker))
        assert [(t.task_id, t.error_message) for t in found] == [
            (rows_id, bounded["error_message"]),
            (written_id, bounded["error_message"]),
        ], "a query for the whole worker id must find its tasks, their summaries bounded"
        beats = [w.heartbeat for w in await store.workers(stale_after=3600, now=start)]
        assert [b.worker for b in beats if b.host.startswith(host[:100])] == [bounded["worker"]], (
            "a heartbeat's host name must be kept as taskq.task_events.stored_worker keeps it"
        )
        kept_beats = [b for b in beats if b.host.startswith(host[:100])]
        assert kept_beats == list(bounded_heartbeats([beat])), (
            f"a heartbeat's broker, queue and version longer than {MAX_HEARTBEAT_TEXT_CHARS} "
            "characters must be kept as taskq.task_events.bounded_heartbeats keeps them "
            "(shortened): `taskq status` prints them, and a 1 MB queue name costs megabytes"
        )


async def test_many_events_in_many_batches_are_all_kept(
    taskq_new_event_store: NewEventStore,
) -> None:
    async with taskq_new_event_store() as store:
        start, ids = later(), [new_id() for _ in range(20)]
        written: dict[str, list[TaskEvent]] = {task_id: [] for task_id in ids}
        kinds = [EventKind.RECEIVED, EventKind.STARTED, EventKind.SUCCEEDED]
        for step, kind in enumerate(kinds):
            batch = [event(kind, task_id, start + step) for task_id in ids]
            for item in batch:
                written[item.task_id].append(item)
            await store.write(batch)
        for task_id in ids:
            assert await store.task_events(task_id) == written[task_id], (
                f"the events of {task_id} are not the ones written"
            )


async def test_a_task_summary_follows_its_latest_event(
    taskq_new_event_store: NewEventStore,
) -> None:
    async with taskq_new_event_store() as store:
        task_id, name, start = new_id(), new_id("name"), later()
        other = WorkerId("conformance-other", 7, 2)
        await store.write(
            [
                event(EventKind.SENT, task_id, start, name),
                event(
                    EventKind.FAILED,
                    task_id,
                    start + 2,
                    name,
                    worker=other,
                    duration=0.5,
                    error_type="KeyError",
                    error_message="'x'",
                ),
                event(EventKind.RECEIVED, task_id, start + 1, name, worker=other),
            ]
        )
        page = await store.tasks(TaskQuery(name=name))
        assert page.tasks == [
            TaskSummary(
                task_id, name, EventKind.FAILED, other, start, start + 2, 0.5, "KeyError", "'x'"
            )
        ], "the summary must carry the latest event's state, worker, duration and error"
        assert page.cursor is None


async def test_tasks_filter_by_state_name_worker_and_time(
    taskq_new_event_store: NewEventStore,
) -> None:
    async with taskq_new_event_store() as store:
        name, other_name, start = new_id("name"), new_id("name"), later()
        other = WorkerId("conformance-other", 8, 0)
        done, failed, elsewhere, renamed = (new_id() for _ in range(4))
        await store.write(
            [
                event(EventKind.SUCCEEDED, done, start, name),
                event(EventKind.FAILED, failed, start + 1, name),
                event(EventKind.SUCCEEDED, elsewhere, start + 2, name, worker=other),
                event(EventKind.SUCCEEDED, renamed, start + 3, other_name),
            ]
        )

        async def ids(**filters: Any) -> list[str]:
            return [t.task_id for t in await all_tasks(store, TaskQuery(**filters))]

        assert await ids(name=name) == [elsewhere, failed, done], "latest first, by name"
        assert await ids(name=name, state=EventKind.SUCCEEDED) == [elsewhere, done]
        assert await ids(state=EventKind.FAILED, since=start) == [failed]
        assert await ids(worker=other, since=start) == [elsewhere]
        assert await ids(since=start + 1, until=start + 3) == [elsewhere, failed], (
            "since is inclusive, until exclusive, on the latest event's time"
        )


async def test_task_pages_cover_every_task_once(taskq_new_event_store: NewEventStore) -> None:
    async with taskq_new_event_store() as store:
        name, start = new_id("name"), later()
        ids = [new_id() for _ in range(7)]
        # Two tasks share a time: the order between them is still total.
        times = [start, start + 1, start + 1, start + 2, start + 3, start + 4, start + 5]
        await store.write(
            [event(EventKind.STARTED, i, t, name) for i, t in zip(ids, times, strict=True)]
        )
        pages = []
        query = TaskQuery(name=name, limit=3)
        while True:
            page = await store.tasks(query)
            assert len(page.tasks) <= 3, "a page holds at most `limit` tasks"
            pages.append([t.task_id for t in page.tasks])
            if page.cursor is None:
                break
            query = TaskQuery(name=name, limit=3, cursor=page.cursor)
        found = [task_id for page_ids in pages for task_id in page_ids]
        assert sorted(found) == sorted(ids), f"the pages {pages} do not hold each task once"
        assert [len(p) for p in pages][:2] == [3, 3], "a page is full while more tasks follow"
        assert (found[0], found[-1]) == (ids[-1], ids[0]), "tasks must come latest first"


async def test_latest_failures_come_newest_first(taskq_new_event_store: NewEventStore) -> None:
    async with taskq_new_event_store() as store:
        start = later()
        failures = [
            event(
                EventKind.FAILED,
                new_id(),
                start + i,
                duration=0.1,
                error_type="RuntimeError",
                error_message=f"failure {i}",
            )
            for i in range(4)
        ]
        await store.write([*failures, event(EventKind.SUCCEEDED, new_id(), start + 9)])
        assert await store.failures(3) == failures[:0:-1], (
            "the latest failed events, newest first, with their error"
        )


async def test_rates_count_events_per_minute(taskq_new_event_store: NewEventStore) -> None:
    async with taskq_new_event_store() as store:
        # A minute of its own, a day ago: no other check writes there.
        minute = minute_of(time.time() - 86400) - 60 * (uuid.uuid4().int % 600)
        succeeded = [event(EventKind.SUCCEEDED, new_id(), minute + s) for s in (1, 20, 59)]
        failed = [event(EventKind.FAILED, new_id(), minute + 30)]
        next_minute = [event(EventKind.SUCCEEDED, new_id(), minute + 60 + s) for s in (0, 5)]
        await store.write([*succeeded, *failed])
        await store.write(next_minute)
        rates = await store.rates(3, now=minute + 90)
        assert [rate.minute for rate in rates] == [minute - 60, minute, minute + 60]
        assert [rate.count(EventKind.SUCCEEDED) for rate in rates] == [0, 3, 2]
        assert [rate.count(EventKind.FAILED) for rate in rates] == [0, 1, 0]


async def test_workers_are_alive_or_stale(taskq_new_event_store: NewEventStore) -> None:
    async with taskq_new_event_store() as store:
        now = time.time()
        host = new_id("host")
        fresh, stale = WorkerId(host, 1, 0), WorkerId(host, 2, 0)
        await store.write([], [heartbeat(fresh, now - 5, processed=3), heartbeat(stale, now - 100)])
        await store.write([], [heartbeat(fresh, now - 1, processed=5)])
        await store.write([], [heartbeat(fresh, now - 3, processed=4)])  # late, older
        found = [
            w for w in await store.workers(stale_after=30, now=now) if w.heartbeat.host == host
        ]
        assert [(w.heartbeat.worker, w.alive) for w in found] == [(fresh, True), (stale, False)]
        assert found[0].heartbeat == heartbeat(fresh, now - 1, processed=5), (
            "a worker's status is its newest heartbeat"
        )


async def test_a_worker_whose_heartbeat_is_dated_ahead_is_not_alive(
    taskq_new_event_store: NewEventStore,
) -> None:
    async with taskq_new_event_store() as store:
        now = time.time()
        host = new_id("host")
        near, ahead = WorkerId(host, 1, 0), WorkerId(host, 2, 0)
        await store.write([], [heartbeat(near, now + 5), heartbeat(ahead, now + 3600)])
        found = [
            (w.heartbeat.worker, w.alive, w.clock_ahead)
            for w in await store.workers(stale_after=30, now=now)
            if w.heartbeat.host == host
        ]
        assert found == [(near, True, False), (ahead, False, True)], (
            "a heartbeat dated within stale_after ahead of now is alive (clocks differ a little); "
            "one dated further ahead comes from a clock that runs ahead: not alive, clock_ahead "
            "(WorkerStatus.judged)"
        )


async def test_retention_by_count_drops_the_oldest_tasks_whole(
    taskq_new_event_store: NewEventStore,
) -> None:
    async with taskq_new_event_store() as store:
        store.retention = Retention(max_events=20)
        name, start = new_id("name"), later(span=40)
        ids = [new_id() for _ in range(30)]
        for step in range(0, 30, 5):
            batch = []
            for offset, task_id in enumerate(ids[step : step + 5]):
                at = start + step + offset
                batch += [
                    event(EventKind.STARTED, task_id, at, name),
                    event(EventKind.SUCCEEDED, task_id, at, name),
                ]
            await store.write(batch)
        everything = await all_tasks(store, TaskQuery(limit=50))
        kept = sum([len(await store.task_events(task.task_id)) for task in everything])
        assert kept <= 20, f"max_events=20 but the store keeps {kept} events"
        assert [t.task_id for t in await all_tasks(store, TaskQuery(name=name))] == ids[:19:-1], (
            "the newest tasks must be kept, the oldest dropped"
        )
        for task_id in ids[20:]:
            assert len(await store.task_events(task_id)) == 2, "a kept task keeps all its events"
        assert await store.task_events(ids[0]) == [], "a dropped task has no events left"


async def test_retention_by_age(taskq_new_event_store: NewEventStore) -> None:
    async with taskq_new_event_store() as store:
        store.retention = Retention(max_age=3600)
        now = time.time()
        old, fresh = new_id(), new_id()
        host = new_id("host")
        await store.write(
            [event(EventKind.SUCCEEDED, old, now - 7200), event(EventKind.SENT, old, now - 7300)],
            [heartbeat(WorkerId(host, 1, 0), now - 7200)],
        )
        await store.write([event(EventKind.SUCCEEDED, fresh, later())])
        assert await store.task_events(old) == [], "events older than max_age must go"
        assert len(await store.task_events(fresh)) == 1
        workers = await store.workers(stale_after=30)
        assert not [w for w in workers if w.heartbeat.host == host], "old heartbeats must go"
        rates = await store.rates(1, now=now - 7200)
        assert rates[0].count(EventKind.SUCCEEDED) == 0, "rates older than max_age must go"


# -- cross_process ----------------------------------------------------------------------------


@pytest.mark.taskq_requires(Capability.CROSS_PROCESS)
async def test_several_writer_processes(
    taskq_new_event_store: NewEventStore, taskq_event_store_target: Target
) -> None:
    if taskq_event_store_target.spec is None:
        pytest.skip("the store comes from a hook: another process cannot make one")
    name, host, start = new_id("name"), new_id("host"), later(span=BATCHES * 3)
    await asyncio.gather(
        *(
            asyncio.to_thread(
                _write_from_another_process,
                taskq_event_store_target.spec,
                name,
                host,
                writer,
                start,
            )
            for writer in range(WRITERS)
        )
    )
    async with taskq_new_event_store() as store:
        tasks = await all_tasks(store, TaskQuery(name=name))
        assert len(tasks) == WRITERS * BATCHES, (
            f"{WRITERS} processes wrote {WRITERS * BATCHES} tasks, {len(tasks)} are here; "
            f"{FACTORY_CONTRACT}"
        )
        for task in tasks:
            kinds = [e.kind for e in await store.task_events(task.task_id)]
            assert kinds == [EventKind.RECEIVED, EventKind.STARTED, EventKind.SUCCEEDED]
        workers = [w for w in await store.workers(stale_after=3600) if w.heartbeat.host == host]
        assert len(workers) == WRITERS, "each writer's heartbeat must be kept"


def _write_from_another_process(spec: str, name: str, host: str, writer: int, start: float) -> None:
    body = (
        "from taskq.task_events import EventKind, TaskEvent, WorkerHeartbeat, WorkerId\n"
        f"worker = WorkerId({host!r}, {writer}, 0)\n"
        f"for batch in range({BATCHES}):\n"
        f"    at = {start!r} + batch * 3\n"
        f"    task_id = f'{name}-{writer}-{{batch}}'\n"
        "    events = [\n"
        f"        TaskEvent(kind, task_id, {name!r}, worker, at + step)\n"
        "        for step, kind in enumerate(\n"
        "            [EventKind.RECEIVED, EventKind.STARTED, EventKind.SUCCEEDED])\n"
        "    ]\n"
        "    beat = WorkerHeartbeat(worker, at, at, 'B', 'q', 1, 0, batch, 0, '0')\n"
        "    await instance.write(events, [beat])\n"
    )
    run_in_another_process(spec, body, CHILD_TIMEOUT)
