"""The result backend suite: what every backend must do, then each capability it may declare."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from taskq import Capability, TaskiqError, TaskiqResult, TaskProgress, TaskState
from taskq_conformance.instances import FACTORY_CONTRACT, NewBackend, run_in_another_process
from taskq_conformance.settings import Settings
from taskq_conformance.targets import Target

#: Seconds the suite allows for what must happen "now" (a wake-up, a write by another process).
PROMPT = 5.0


def new_id() -> str:
    """A task id no other test uses."""
    return f"conformance-{uuid.uuid4().hex}"


def success(value: Any, **extra: Any) -> TaskiqResult[Any]:
    """A successful result carrying ``value``."""
    return TaskiqResult(is_err=False, return_value=value, execution_time=0.25, **extra)


# -- mandatory -------------------------------------------------------------------------------


async def test_set_get_and_is_ready(taskq_new_result_backend: NewBackend) -> None:
    async with taskq_new_result_backend() as backend:
        task_id = new_id()
        await backend.set_result(task_id, success({"answer": 42}))
        assert await backend.is_result_ready(task_id), "a stored result is not ready"
        result = await backend.get_result(task_id)
        assert result.is_err is False
        assert result.return_value == {"answer": 42}


async def test_unknown_id_is_not_ready_and_get_raises_a_typed_error(
    taskq_new_result_backend: NewBackend,
) -> None:
    async with taskq_new_result_backend() as backend:
        task_id = new_id()
        assert not await backend.is_result_ready(task_id), "an unknown id reports ready"
        with pytest.raises(TaskiqError):
            await backend.get_result(task_id)


async def test_result_now_gives_the_latest_result_or_none(
    taskq_new_result_backend: NewBackend,
) -> None:
    """``result_now``, which ``wait_result`` asks before it waits, gives no stale result."""
    async with taskq_new_result_backend() as backend:
        task_id = new_id()
        assert backend.result_now(task_id) is None, "result_now() gave a result for an unknown id"
        for value in ("first", "second"):
            await backend.set_result(task_id, success(value))
            held = backend.result_now(task_id)
            assert held is None or held.return_value == value, (
                f"result_now() gave {held.return_value!r} once {value!r} was stored"
            )


async def test_error_results_keep_type_and_message(taskq_new_result_backend: NewBackend) -> None:
    async with taskq_new_result_backend() as backend:
        task_id = new_id()
        error = ValueError("the input was bad")
        await backend.set_result(
            task_id, TaskiqResult(is_err=True, return_value=None, execution_time=0.1, error=error)
        )
        result = await backend.get_result(task_id)
        assert result.is_err is True, "is_err was lost"
        assert isinstance(result.error, ValueError), f"error type changed: {result.error!r}"
        assert str(result.error) == "the input was bad"
        with pytest.raises(ValueError, match="the input was bad"):
            result.raise_for_error()


async def test_labels_execution_time_and_logs_round_trip(
    taskq_new_result_backend: NewBackend,
) -> None:
    async with taskq_new_result_backend() as backend:
        task_id = new_id()
        labels = {"text": "é", "number": 3, "nested": {"a": [1]}}
        await backend.set_result(task_id, success(1, labels=labels, log="line one\nline two"))
        with_logs = await backend.get_result(task_id, with_logs=True)
        assert with_logs.labels == labels, f"labels changed: {with_logs.labels!r}"
        assert with_logs.execution_time == pytest.approx(0.25)
        assert with_logs.log == "line one\nline two", "with_logs=True did not return the log"


async def test_concurrent_writers_never_mix_results(taskq_new_result_backend: NewBackend) -> None:
    async with taskq_new_result_backend() as backend:
        ids = [new_id() for _ in range(1000)]
        await asyncio.gather(*(backend.set_result(i, success(i)) for i in ids))
        results = await asyncio.gather(*(backend.get_result(i) for i in ids))
        mixed = [i for i, result in zip(ids, results, strict=True) if result.return_value != i]
        assert not mixed, f"{len(mixed)} of 1000 results came back under another task id"


async def test_one_mebibyte_results(taskq_new_result_backend: NewBackend) -> None:
    async with taskq_new_result_backend() as backend:
        task_id = new_id()
        value = "x" * (1024 * 1024)
        await backend.set_result(task_id, success(value))
        assert (await backend.get_result(task_id)).return_value == value


async def test_wait_ready_returns_in_time(
    taskq_new_result_backend: NewBackend, taskq_settings: Settings
) -> None:
    timeout, tolerance = 1.0, taskq_settings.tolerance
    async with taskq_new_result_backend() as backend:
        # a check interval far past the timeout: the wait must still end at its timeout
        started = time.monotonic()
        try:
            ready = await asyncio.wait_for(
                backend.wait_ready(new_id(), timeout, 60), timeout + tolerance + PROMPT
            )
        except asyncio.TimeoutError:
            pytest.fail(
                f"a {timeout} s wait had not returned after {time.monotonic() - started:.2f} s: "
                "does wait_ready sleep a whole check interval past its timeout?"
            )
        took = time.monotonic() - started
        assert ready is False, "waiting for an id never stored reported it ready"
        assert took >= timeout - 0.05, f"a {timeout} s wait gave up after {took:.2f} s"
        assert took <= timeout + tolerance, (
            f"a {timeout} s wait returned after {took:.2f} s, later than the timing tolerance "
            f"of {tolerance} s allows (--taskq-timing-tolerance)"
        )


# -- undeclared capabilities fail loudly -------------------------------------------------------


@pytest.mark.taskq_lacks(Capability.PROGRESS)
async def test_progress_is_refused_without_the_capability(
    taskq_new_result_backend: NewBackend,
) -> None:
    async with taskq_new_result_backend() as backend:
        with pytest.raises(TaskiqError):
            await backend.set_progress(new_id(), TaskProgress(TaskState.STARTED, 1))


# -- declared capabilities -----------------------------------------------------------------------


@pytest.mark.taskq_requires(Capability.PROGRESS)
async def test_progress(taskq_new_result_backend: NewBackend) -> None:
    async with taskq_new_result_backend() as backend:
        task_id = new_id()
        assert await backend.get_progress(task_id) is None, "an unknown id has progress"
        await backend.set_progress(task_id, TaskProgress(TaskState.STARTED, {"done": 1}))
        await backend.set_progress(task_id, TaskProgress(TaskState.STARTED, {"done": 2}))
        progress = await backend.get_progress(task_id)
        assert progress is not None, "progress was dropped"
        assert TaskState(progress.state) is TaskState.STARTED
        assert progress.meta == {"done": 2}, "the latest progress report is not the one read"


@pytest.mark.taskq_requires(Capability.TTL)
async def test_ttl(taskq_new_result_backend: NewBackend) -> None:
    async with taskq_new_result_backend() as backend:
        assert hasattr(backend, "result_ttl"), "a backend with 'ttl' has a result_ttl attribute"
        backend.result_ttl = 1
        task_id = new_id()
        await backend.set_result(task_id, success("short-lived"))
        assert await backend.is_result_ready(task_id)
        await asyncio.sleep(2.2)
        assert not await backend.is_result_ready(task_id), "a result outlived its TTL"
        assert backend.result_now(task_id) is None, "result_now() gave a result past its TTL"


@pytest.mark.taskq_requires(Capability.NOTIFY)
async def test_notify_wakes_a_waiter_without_polling(
    taskq_new_result_backend: NewBackend, taskq_settings: Settings
) -> None:
    tolerance = taskq_settings.tolerance
    async with taskq_new_result_backend() as backend:
        task_id = new_id()
        # a check interval far longer than the test: only a notification can wake the waiter
        waiter = asyncio.create_task(backend.wait_ready(task_id, PROMPT * 4, 3600))
        await asyncio.sleep(0.1)
        stored_at = time.monotonic()
        await backend.set_result(task_id, success(1))
        try:
            ready = await asyncio.wait_for(waiter, PROMPT)
        except asyncio.TimeoutError:
            pytest.fail(f"the waiter was not woken within {PROMPT} s of the result being stored")
        woken_after = time.monotonic() - stored_at
        assert ready is True
        assert woken_after <= tolerance, (
            f"the waiter was woken {woken_after:.2f} s after the result was stored: a "
            f"notification takes less than the timing tolerance, {tolerance} s "
            "(--taskq-timing-tolerance)"
        )


@pytest.mark.taskq_requires(Capability.CROSS_PROCESS)
async def test_cross_process(
    taskq_new_result_backend: NewBackend, taskq_result_backend_target: Target
) -> None:
    if taskq_result_backend_target.spec is None:
        pytest.skip("the backend comes from a hook: another process cannot make one")
    task_id = new_id()
    async with taskq_new_result_backend() as backend:
        await asyncio.to_thread(
            _store_from_another_process, taskq_result_backend_target.spec, task_id
        )
        assert await backend.is_result_ready(task_id), (
            f"a result stored by another process is not ready here; {FACTORY_CONTRACT}"
        )
        assert (await backend.get_result(task_id)).return_value == [1, "two"]


def _store_from_another_process(spec: str, task_id: str) -> None:
    body = (
        "result = taskq.TaskiqResult(is_err=False, return_value=[1, 'two'], execution_time=0)\n"
        f"await instance.set_result({task_id!r}, result)"
    )
    run_in_another_process(spec, body, PROMPT * 6)
