"""The receiver's task logs: one line per run with ``log_tasks``, a failure at its level."""

from __future__ import annotations

import json
import logging

import pytest

from taskq.cli.logs import JsonLogFormatter
from taskq.receiver import Receiver
from taskq.task_events import MAX_TASK_ID_CHARS, stored_task_id, stored_task_name
from taskq_inmemory import InMemoryBroker


async def test_one_line_per_run_and_the_failure_once_at_the_level_given(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = InMemoryBroker()
    broker.is_worker_process = True  # the receiver below runs the tasks

    @broker.task(task_name="ok")
    async def ok() -> None: ...

    @broker.task(task_name="boom")
    async def boom() -> None:
        raise ValueError("no")

    receiver = Receiver(broker, log_tasks=True, failure_log_level=logging.WARNING)
    async with broker:
        with caplog.at_level(logging.INFO):
            good, bad = await ok.kiq(), await boom.kiq()
            for data in (broker.queue.get_nowait(), broker.queue.get_nowait()):
                assert data is not None
                await receiver.callback(data)
    lines = [r.getMessage() for r in caplog.records if r.name == "taskq.tasks"]
    assert len(lines) == 2
    assert lines[0].startswith(f"ok {good.task_id} ")
    assert lines[0].endswith("s succeeded")
    assert lines[1].startswith(f"boom {bad.task_id} ")
    assert lines[1].endswith("s failed (ValueError)")
    failures = [r for r in caplog.records if r.exc_info]
    assert [r.levelno for r in failures] == [logging.WARNING]  # the traceback once, as asked


def test_json_records_carry_the_task_while_it_runs() -> None:
    from taskq.log_context import current_task

    formatter = JsonLogFormatter("host:1:0")
    token = current_task.set(("t-1", "app:job"))
    try:
        record = logging.LogRecord("app", logging.INFO, __file__, 1, "hello %s", ("you",), None)
        data = json.loads(formatter.format(record))
    finally:
        current_task.reset(token)
    assert data["message"] == "hello you"
    assert (data["task_id"], data["task_name"], data["worker_id"]) == ("t-1", "app:job", "host:1:0")
    assert set(data) == {"time", "level", "logger", "message", "task_id", "task_name", "worker_id"}
    outside = json.loads(formatter.format(record))
    assert "task_id" not in outside


async def test_a_task_id_of_megabytes_is_logged_as_the_event_store_keeps_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # each line about the task held the whole id: 5 MB a line for a message with a 5 MB id
    broker = InMemoryBroker()
    broker.is_worker_process = True

    @broker.task(task_name="boom")
    async def boom() -> None:
        raise ValueError("no")

    receiver = Receiver(broker, log_tasks=True)
    long_id = "i" * 1_000_000
    async with broker:
        with caplog.at_level(logging.INFO):
            await boom.kicker().with_task_id(long_id).kiq()
            data = broker.queue.get_nowait()
            assert data is not None
            await receiver.callback(data)
    lines = [r.getMessage() for r in caplog.records if "boom" in r.getMessage()]
    assert len(lines) == 2  # the failure, then the line of the run
    for line in lines:
        assert stored_task_id(long_id) in line
        assert len(line) < 2 * MAX_TASK_ID_CHARS


def test_json_records_carry_a_long_task_id_and_name_as_the_event_store_keeps_them() -> None:
    from taskq.log_context import current_task

    formatter = JsonLogFormatter()
    long_id, long_name = "i" * 100_000, "n" * 100_000
    token = current_task.set((long_id, long_name))
    try:
        record = logging.LogRecord("app", logging.INFO, __file__, 1, "hello", (), None)
        data = json.loads(formatter.format(record))
    finally:
        current_task.reset(token)
    assert (data["task_id"], data["task_name"]) == (
        stored_task_id(long_id),
        stored_task_name(long_name),
    )
