"""`taskq worker --events`, ``--log-tasks`` and ``--log-format json`` across real processes."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

SUPPORT_DIR = Path(__file__).resolve().parent / "cli_support"
if str(SUPPORT_DIR) not in sys.path:
    sys.path.insert(0, str(SUPPORT_DIR))

from worker_run import SpoolClient, WorkerRun, eventually  # noqa: E402

from taskq.event_stores.sqlite import SQLiteEventStore  # noqa: E402
from taskq.task_events import EventKind, TaskEvent, WorkerStatus  # noqa: E402

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process groups"),
]

APP = "spool_app:broker"


def read(database: Path, query: str, *args: Any) -> Any:
    """Run one query of a fresh `SQLiteEventStore` on ``database`` (as another process would)."""

    async def run() -> Any:
        store = SQLiteEventStore(database)
        await store.startup()
        try:
            return await getattr(store, query)(*args)
        finally:
            await store.shutdown()

    return asyncio.run(run())


def test_workers_record_each_task_and_heartbeat_into_one_sqlite_file(tmp_path: Path) -> None:
    spool, database = tmp_path / "spool", tmp_path / "events.db"
    client = SpoolClient(spool)
    keys = [client.send("record", f"key-{n}") for n in range(10)]
    exits = client.send("leave")
    args = [APP, "--workers", "2", "--events", f"sqlite://{database}", "--log-tasks"]
    with WorkerRun([*args, "--log-format", "json"], spool) as run:
        for task_id in [*keys, exits]:
            client.result(task_id)

        def both_alive() -> list[WorkerStatus]:
            workers = read(database, "workers", 60.0)
            return workers if len(workers) == 2 else []

        workers = eventually(both_alive, what="heartbeats of both worker processes")
        run.send_signal(signal.SIGTERM)
        assert run.wait() == 0
        log = run.log
    assert {status.heartbeat.worker.process for status in workers} == {0, 1}
    assert {status.heartbeat.broker for status in workers} == {"SpoolBroker"}
    final = read(database, "workers", 60.0)
    assert sum(status.heartbeat.processed for status in final) == 11  # flushed at shutdown
    assert sum(status.heartbeat.failed for status in final) == 1
    for task_id in keys:
        events: list[TaskEvent] = read(database, "task_events", task_id)
        assert [event.kind for event in events] == [
            EventKind.RECEIVED,
            EventKind.STARTED,
            EventKind.SUCCEEDED,
        ]
        assert events[-1].duration is not None
    failure = read(database, "task_events", exits)[-1]
    assert (failure.kind, failure.error_type) == (EventKind.FAILED, "TaskExitError")
    check_json_log(log, keys[0], exits)


def check_json_log(log: str, task_id: str, failed_task_id: str) -> None:
    """Every line is one JSON object with the fixed keys; task lines carry the task."""
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message", "worker_id"} <= set(r) for r in records)
    (line,) = [r for r in records if r["logger"] == "taskq.tasks" and r.get("task_id") == task_id]
    assert line["level"] == "INFO"
    assert line["task_name"] == "record"
    assert line["message"].startswith(f"record {task_id} ")
    assert line["message"].endswith(" succeeded")
    failures = [r for r in records if r.get("task_id") == failed_task_id]
    assert [r["level"] for r in failures if "exception" in r] == ["ERROR"]  # the traceback once
    assert any(r["message"].endswith("failed (TaskExitError)") for r in failures)


def test_several_workers_on_a_broker_that_cannot_cross_processes_warn(tmp_path: Path) -> None:
    (tmp_path / "memory_app.py").write_text(
        textwrap.dedent(
            """
            from taskq_inmemory import InMemoryBroker

            broker = InMemoryBroker()
            """
        )
    )
    with WorkerRun(["memory_app:broker", "--workers", "2"], tmp_path / "spool") as run:
        run.wait_for_log("will never receive a task")
        run.wait_for_starts(2)
        run.send_signal(signal.SIGTERM)
        assert run.wait() == 0
        assert run.log.count("will never receive a task") == 1
