"""`run_receiver_task`: a worker run programmatically, as taskiq's ``taskiq.api``."""

from __future__ import annotations

import asyncio

import pytest

from taskq import TaskiqEvents
from taskq.api import run_receiver_task


async def test_runs_the_brokers_tasks_as_a_worker(recording_broker, encode):
    @recording_broker.task
    async def add(a: int, b: int) -> int:
        return a + b

    @recording_broker.task
    def where() -> bool:
        return recording_broker.is_worker_process

    started: list[bool] = []
    recording_broker.add_event_handler(
        TaskiqEvents.WORKER_STARTUP, lambda state: started.append(True)
    )
    recording_broker.put_raw(encode(recording_broker, add.task_name, 2, 3, task_id="a"))
    recording_broker.put_raw(encode(recording_broker, where.task_name, task_id="w"))
    recording_broker.close()
    await asyncio.wait_for(run_receiver_task(recording_broker, run_startup=True), 5)
    backend = recording_broker.result_backend
    assert (await backend.get_result("a")).return_value == 5
    assert (await backend.get_result("w")).return_value is True
    assert started == [True]


async def test_listens_again_after_a_failure_until_cancelled(recording_broker, monkeypatch, caplog):
    monkeypatch.setattr("taskq.api.receiver.RESTART_DELAY_S", 0)
    attempts: list[int] = []
    failed_twice = asyncio.Event()

    def failing_listen() -> object:
        attempts.append(1)
        if len(attempts) >= 2:
            failed_twice.set()
        raise ConnectionError("broker down")

    monkeypatch.setattr(recording_broker, "listen", failing_listen)
    running = asyncio.create_task(run_receiver_task(recording_broker))
    await asyncio.wait_for(failed_twice.wait(), 5)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert "listening again" in caplog.text


async def test_refuses_a_negative_prefetch(recording_broker):
    with pytest.raises(ValueError, match="max_prefetch"):
        await run_receiver_task(recording_broker, max_prefetch=-1)


async def test_refuses_a_process_pool_with_the_reason(recording_broker):
    with pytest.raises(ValueError, match="sync tasks in threads"):
        await run_receiver_task(recording_broker, use_process_pool=True)
