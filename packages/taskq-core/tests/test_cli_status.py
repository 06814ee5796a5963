"""``taskq status``: options and their environment twins, the screen, JSON, watch, exit status."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import io
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from taskq.cli.status import StatusOptions, main, parse_status_args, render, run
from taskq.event_stores import InMemoryEventStore, SQLiteEventStore
from taskq.exceptions import EventStoreError
from taskq.inspection import QueueInspection
from taskq.status_report import collect_status
from taskq.task_events import (
    MAX_ERROR_MESSAGE_CHARS,
    EventKind,
    MinuteRate,
    TaskEvent,
    WorkerHeartbeat,
    WorkerId,
)
from taskq.testing import eventually
from taskq_inmemory import InMemoryBroker

from .conftest import RecordingBroker

WORKER = WorkerId("host-a", 10, 0)


def beat(at: float) -> WorkerHeartbeat:
    return WorkerHeartbeat(WORKER, at, at - 60, "InMemoryBroker", "default", 4, 1, 7, 2, "0.1.0")


async def fill(store: SQLiteEventStore | InMemoryEventStore, heartbeat_age: float) -> None:
    now = time.time()
    await store.write(
        [
            TaskEvent(EventKind.SUCCEEDED, "t1", "app:add", WORKER, now, duration=0.1),
            TaskEvent(
                EventKind.FAILED,
                "t2",
                "app:div",
                WORKER,
                now,
                duration=0.1,
                error_type="ZeroDivisionError",
                error_message="division by zero",
            ),
        ],
        [beat(now - heartbeat_age)],
    )


def app(tmp_path: Path) -> tuple[str, str]:
    """A module in ``tmp_path`` with an in-memory broker; (target, app dir)."""
    name = f"status_app_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        "from taskq_inmemory import InMemoryBroker\nbroker = InMemoryBroker()\n"
    )
    return f"{name}:broker", str(tmp_path)


def test_every_option_has_its_environment_twin_and_the_command_line_wins() -> None:
    environ = {
        "TASKQ_STATUS_EVENTS": "sqlite://x.db",
        "TASKQ_STATUS_STALE_AFTER": "12",
        "TASKQ_STATUS_FAILURES": "3",
        "TASKQ_STATUS_JSON": "yes",
        "TASKQ_STATUS_WATCH": "1",
        "TASKQ_STATUS_INTERVAL": "0.5",
    }
    options = parse_status_args(["app:broker", "--failures", "4"], environ)
    assert options == StatusOptions(
        broker="app:broker",
        events="sqlite://x.db",
        stale_after=12,
        failures=4,
        json=True,
        watch=True,
        interval=0.5,
    )


async def test_the_screen_shows_workers_queue_throughput_and_failures(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "events.db")
    await fill(store, heartbeat_age=1)
    await store.shutdown()
    target, app_dir = app(tmp_path)
    out = io.StringIO()
    status = await asyncio.to_thread(
        _main_with_stdout,
        [target, "--app-dir", app_dir, "--events", f"sqlite://{tmp_path / 'events.db'}"],
        out,
    )
    assert status == 0, out.getvalue()
    screen = out.getvalue()
    assert "Workers: 1 alive, 0 stale" in screen
    assert "host-a:10:0" in screen
    assert "Queue memory: ready 0" in screen
    assert "app:div  t2  ZeroDivisionError: division by zero" in screen
    assert "1 min" in screen
    assert "50.0%" in screen


async def test_control_characters_from_the_store_are_shown_as_escapes_not_sent() -> None:
    # a task name, an error message or a host name holding escape sequences: printed as they
    # are, they would clear the screen, recolour it or retitle the terminal
    store = InMemoryEventStore()
    now = time.time()
    worker = WorkerId("host\x1b[31m", 10, 0)
    failed = TaskEvent(
        EventKind.FAILED,
        "t1",
        "app:\x1b[2Jclear",
        worker,
        now,
        error_type="ValueError",
        error_message="bad\x1b]0;pwned\x07\nsecond line\x9b1m",
    )
    await store.write([failed], [dataclasses.replace(beat(now), worker=worker)])
    screen = render(await collect_status(store, None))
    assert not any(char in screen for char in "\x1b\x07\x9b")
    assert "app:\\x1b[2Jclear" in screen
    assert "bad\\x1b]0;pwned\\x07\\nsecond line\\x9b1m" in screen
    assert "host\\x1b[31m:10:0" in screen


def test_no_alive_worker_fails_the_health_check_and_json_says_so(tmp_path: Path) -> None:
    asyncio.run(fill(SQLiteEventStore(tmp_path / "events.db"), heartbeat_age=120))
    target, app_dir = app(tmp_path)
    out = io.StringIO()
    events = f"sqlite://{tmp_path / 'events.db'}"
    status = _main_with_stdout([target, "-d", app_dir, "--events", events, "--json"], out)
    assert status == 1
    report = json.loads(out.getvalue())
    assert report["alive"] == 0
    assert report["workers"][0]["alive"] is False
    assert report["throughput"][0]["failed"] == 1
    assert report["failures"][0]["error_type"] == "ZeroDivisionError"


def test_the_app_is_imported_with_the_collector_paused_then_frozen(tmp_path: Path) -> None:
    asyncio.run(fill(SQLiteEventStore(tmp_path / "events.db"), heartbeat_age=1))
    target, app_dir = app(tmp_path)
    events = f"sqlite://{tmp_path / 'events.db'}"
    gc.unfreeze()
    try:
        assert main(["no_such_app_module:broker", "-d", app_dir, "--events", events]) == 2
        assert gc.isenabled()  # a failed import gives the collector back too
        status = _main_with_stdout([target, "-d", app_dir, "--events", events], io.StringIO())
        assert status == 0
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0  # what the imports made is out of the collector's way
    finally:
        gc.unfreeze()


def test_a_mistyped_sqlite_path_is_a_usage_error_not_an_empty_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(fill(SQLiteEventStore(tmp_path / "events.db"), heartbeat_age=1))
    target, app_dir = app(tmp_path)
    mistyped = tmp_path / "event.db"
    assert main([target, "-d", app_dir, "--events", f"sqlite://{mistyped}?max_age=60"]) == 2
    assert f"no event store file {str(mistyped)!r}" in capsys.readouterr().err
    assert not mistyped.exists()


def test_a_broker_without_an_event_store_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, app_dir = app(tmp_path)
    assert main([target, "-d", app_dir]) == 2
    assert "--events" in capsys.readouterr().err


async def test_watch_redraws_until_interrupted() -> None:
    store = InMemoryEventStore()
    await fill(store, heartbeat_age=0)
    out = io.StringIO()
    options = StatusOptions("x:y", watch=True, interval=0.01)
    running = asyncio.create_task(run(options, InMemoryBroker(), store, out))
    await eventually(lambda: out.getvalue().count("\x1b[H\x1b[2J") >= 3, what="three redraws")
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_a_broker_without_inspect_shows_the_queue_as_not_available() -> None:
    store = InMemoryEventStore()
    await fill(store, heartbeat_age=0)
    out = io.StringIO()
    status = await run(StatusOptions("x:y"), RecordingBroker(), store, out)
    assert status == 0
    assert "Queue: n/a (RecordingBroker does not declare inspect)" in out.getvalue()


def _main_with_stdout(argv: list[str], out: io.StringIO) -> int:
    with contextlib.redirect_stdout(out):
        return main(argv)


def test_the_brokers_own_event_store_is_read_by_default(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    asyncio.run(fill(SQLiteEventStore(path), heartbeat_age=1))
    name = f"status_app_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        "from taskq.event_stores import SQLiteEventStore\n"
        "from taskq_inmemory import InMemoryBroker\n"
        f"broker = InMemoryBroker().with_event_store(SQLiteEventStore({str(path)!r}))\n"
    )
    out = io.StringIO()
    assert _main_with_stdout([f"{name}:broker", "-d", str(tmp_path), "--json"], out) == 0
    assert json.loads(out.getvalue())["workers"][0]["worker"] == "host-a:10:0"


class FailingOnce(InMemoryEventStore):
    """A store whose first read of the workers fails."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def workers(self, stale_after: float, now: float | None = None) -> list[Any]:
        if not self.failed:
            self.failed = True
            raise EventStoreError("the store is gone for a moment")
        return await super().workers(stale_after, now)


async def test_watch_shows_a_store_error_and_goes_on() -> None:
    store = FailingOnce()
    await fill(store, heartbeat_age=0)
    out = io.StringIO()
    options = StatusOptions("x:y", watch=True, interval=0.01)
    running = asyncio.create_task(run(options, InMemoryBroker(), store, out))
    await eventually(lambda: "Workers: 1 alive" in out.getvalue(), what="a redraw after the error")
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert "error: the store is gone for a moment" in out.getvalue()


async def test_without_watch_a_store_error_ends_the_command() -> None:
    with pytest.raises(EventStoreError):
        await run(StatusOptions("x:y"), InMemoryBroker(), FailingOnce(), io.StringIO())


class QueueReadWhileStoreIs(InMemoryBroker):
    """A broker whose queue inspection waits until the store is read (or is cancelled)."""

    def __init__(self) -> None:
        super().__init__()
        self.store_read = asyncio.Event()
        self.inspecting = asyncio.Event()
        self.inspection_cancelled = False

    async def inspect(self) -> QueueInspection:
        self.inspecting.set()
        try:
            await self.store_read.wait()
        except asyncio.CancelledError:
            self.inspection_cancelled = True
            raise
        return await super().inspect()


class TellingStore(InMemoryEventStore):
    """Tells the broker when its rates are read; ``fail`` makes that read fail."""

    def __init__(self, broker: QueueReadWhileStoreIs, fail: bool = False) -> None:
        super().__init__()
        self.broker = broker
        self.fail = fail

    async def rates(self, minutes: int, now: float | None = None) -> list[MinuteRate]:
        if self.fail:
            await self.broker.inspecting.wait()
            raise EventStoreError("the store is gone")
        self.broker.store_read.set()
        return await super().rates(minutes, now)


async def test_the_queue_is_inspected_while_the_store_is_read() -> None:
    broker = QueueReadWhileStoreIs()
    store = TellingStore(broker)
    await fill(store, heartbeat_age=0)
    # one after the other, the inspection would wait for a read that never comes
    report = await asyncio.wait_for(collect_status(store, broker), timeout=30)
    assert report.queue is not None
    assert report.alive == 1


async def test_a_store_error_cancels_the_queue_inspection() -> None:
    broker = QueueReadWhileStoreIs()
    with pytest.raises(EventStoreError, match="the store is gone"):
        await asyncio.wait_for(collect_status(TellingStore(broker, fail=True), broker), 30)
    assert broker.inspection_cancelled


async def test_text_no_terminal_can_encode_is_shown_as_escapes() -> None:
    # an error message naming a file whose name is not UTF-8 (decoded with surrogateescape),
    # or text read from JSON as "\ud800": written as it is, it crashed the command
    store = InMemoryEventStore()
    now = time.time()
    failed = TaskEvent(
        EventKind.FAILED, "t\ud800", "app:load", WORKER, now, error_message="no file x\udcff"
    )
    await store.write([failed], [beat(now)])
    screen = render(await collect_status(store, None))
    screen.encode()  # what a UTF-8 terminal takes
    assert "t\\ud800" in screen
    assert "no file x\\udcff" in screen


async def test_a_screen_lists_a_bounded_number_of_workers_and_of_error_characters() -> None:
    # a week of heartbeats from restarted worker processes, and a task that fails with a
    # message of megabytes: the screen stays a screen, --json keeps every worker and every
    # character the store keeps (the first MAX_ERROR_MESSAGE_CHARS)
    store = InMemoryEventStore()
    now = time.time()
    stale = [
        dataclasses.replace(beat(now - 600), worker=WorkerId("old", pid, 0)) for pid in range(3000)
    ]
    alive = dataclasses.replace(beat(now), worker=WorkerId("zz-new", 1, 0))
    message = "x" * 5_000_000
    failed = TaskEvent(EventKind.FAILED, "t1", "app:f", WORKER, now, error_message=message)
    await store.write([failed], [*stale, alive])
    report = await collect_status(store, None)
    screen = render(report)
    assert len(screen.splitlines()) < 100
    assert len(screen) < 10_000
    assert "zz-new:1:0  alive" in screen  # the alive worker is listed, though last by id
    assert "2951 more" in screen
    assert len(report.as_dict()["workers"]) == 3001
    assert report.as_dict()["failures"][0]["error_message"] == message[:MAX_ERROR_MESSAGE_CHARS]


async def test_a_worker_whose_heartbeat_is_dated_ahead_shows_as_such_and_is_not_alive() -> None:
    # its host's clock runs an hour ahead: taken as alive, it would look so for an hour after
    # it stopped, and the health check would pass with no worker running
    store = InMemoryEventStore()
    now = time.time()
    ahead = dataclasses.replace(beat(now + 3600), worker=WorkerId("fast-clock", 1, 0))
    await store.write([], [ahead])
    report = await collect_status(store, None, now=now)
    assert report.alive == 0
    screen = render(report)
    assert "Workers: 0 alive, 0 stale, 1 with a clock ahead" in screen
    assert "fast-clock:1:0  clock ahead" in screen
    assert "dated 3600 s ahead" in screen
    (row,) = report.as_dict()["workers"]
    assert (row["alive"], row["clock_ahead"]) == (False, True)
