"""The receiver's task logs: one line per run with ``log_tasks``, a failure at its level."""

from __future__ import annotations

import json
import logging

import pytest

from taskq.cli.logs import JsonLogFormatter
from taskq.receiver import Receiver
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
