"""Cancelling tasks run by ``taskq worker`` processes, on Redis and on ZeroMQ (with SQLite).

Queued tasks never start; running async tasks are stopped; running sync tasks stop at their
next ``context.raise_if_cancelled()``. Each result is a failed one with `TaskCancelledError`.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from taskq import TaskCancelledError
from taskq.testing import eventually, free_port

APPS = Path(__file__).resolve().parent / "apps"
#: Seconds the tasks would run if nothing stopped them.
LONG = 120.0
WAIT = 60.0


def free_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture(params=["redis", "zmq"])
def environment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(APPS), os.environ.get("PYTHONPATH", "")]),
        "CANCEL_BROKER": request.param,
        "CANCEL_OUT": str(out),
        "CANCEL_ADDRESS": free_address(),
        "CANCEL_SQLITE": str(tmp_path / "control.sqlite3"),
    }
    if request.param == "zmq":
        yield env
        return
    from taskq_redis.testing import redis_url_or_skip, temporary_prefix

    url = redis_url_or_skip()
    with temporary_prefix(url, "cancel") as prefix:
        yield {**env, "CANCEL_REDIS_URL": url, "CANCEL_PREFIX": prefix}


@asynccontextmanager
async def worker_and_client(env: dict[str, str], *options: str) -> AsyncIterator[Any]:
    """One ``taskq worker cancel_app:broker`` process, and the app's broker started as client."""
    worker = start_worker(env, *options)
    os.environ.update({k: v for k, v in env.items() if k.startswith("CANCEL_")})
    sys.path.insert(0, str(APPS))
    try:
        import cancel_app

        app = importlib.reload(cancel_app)
        await app.broker.startup()
        try:
            yield app
        finally:
            await app.broker.shutdown()
    finally:
        sys.path.remove(str(APPS))
        assert stop_worker(worker) == 0


def start_worker(env: dict[str, str], *options: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "taskq", "worker", "cancel_app:broker", "--workers", "1"]
    command += ["--shutdown-timeout", "30", "--log-level", "WARNING", *options]
    return subprocess.Popen(command, cwd=APPS, env=env)


def stop_worker(worker: subprocess.Popen[bytes]) -> int:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    return worker.wait(timeout=60)


def noted(env: dict[str, str], task_id: str, what: str) -> bool:
    return (Path(env["CANCEL_OUT"]) / f"{task_id}.{what}").exists()


async def cancelled_result(task: Any) -> TaskCancelledError:
    result = await task.wait_result(timeout=WAIT)
    assert result.is_err, f"task {task.task_id} was not cancelled: {result.return_value!r}"
    assert isinstance(result.error, TaskCancelledError), repr(result.error)
    return result.error


def assert_nothing_pending(app: Any) -> None:
    """On Redis: every message was acknowledged (none will be delivered again)."""
    if os.environ["CANCEL_BROKER"] != "redis":
        return
    import redis

    broker = app.broker
    with redis.Redis.from_url(os.environ["CANCEL_REDIS_URL"]) as client:
        for stream in broker.keys.streams:
            if client.exists(stream):
                group = broker.options.consumer_group_name
                assert client.xpending(stream, group)["pending"] == 0


async def test_queued_tasks_never_start(environment):
    async with worker_and_client(environment, "--max-async-tasks", "1") as app:
        blocker = await app.wait_async.kiq(LONG)
        await eventually(lambda: noted(environment, blocker.task_id, "started"), WAIT)
        # the worker is busy: these wait in the queue (on ZeroMQ, a send waits for room)
        queued_ids = [uuid.uuid4().hex, uuid.uuid4().hex]
        sending = [
            asyncio.create_task(task.kicker().with_task_id(task_id).kiq(LONG))
            for task, task_id in zip((app.wait_async, app.wait_sync), queued_ids, strict=True)
        ]
        await asyncio.wait(sending, timeout=1)  # sent where the broker has room (Redis)
        for task_id in queued_ids:
            await app.broker.cancel(task_id, "not wanted")
        await blocker.cancel()  # frees the worker's only slot: the queued ones come next
        await cancelled_result(blocker)
        for task in await asyncio.gather(*sending):
            assert (await cancelled_result(task)).reason == "not wanted"
            assert not noted(environment, task.task_id, "started")
        await eventually(lambda: _nothing_pending(app), WAIT)


async def test_a_running_async_task_is_stopped(environment):
    async with worker_and_client(environment) as app:
        task = await app.wait_async.kiq(LONG)
        await eventually(lambda: noted(environment, task.task_id, "started"), WAIT)
        asked = time.monotonic()
        await task.cancel()
        await cancelled_result(task)
        print(f"running async task stopped {time.monotonic() - asked:.3f} s after cancel()")
        assert not noted(environment, task.task_id, "finished")
        await eventually(lambda: _nothing_pending(app), WAIT)


async def test_a_running_sync_task_stops_through_its_context(environment):
    async with worker_and_client(environment) as app:
        task = await app.wait_sync.kiq(LONG)
        await eventually(lambda: noted(environment, task.task_id, "started"), WAIT)
        await task.cancel()
        await cancelled_result(task)
        assert not noted(environment, task.task_id, "finished")
        await eventually(lambda: _nothing_pending(app), WAIT)


def _nothing_pending(app: Any) -> bool:
    try:
        assert_nothing_pending(app)
    except AssertionError:
        return False
    return True


async def test_taskq_cancel_from_a_shell_stops_a_running_task(environment):
    async with worker_and_client(environment) as app:
        task = await app.wait_async.kiq(LONG)
        await eventually(lambda: noted(environment, task.task_id, "started"), WAIT)
        command = [sys.executable, "-m", "taskq", "cancel", "cancel_app:broker", task.task_id]
        shell = await asyncio.create_subprocess_exec(
            *command,
            "--reason",
            "from a shell",
            cwd=APPS,
            env=environment,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(shell.communicate(), WAIT)
        assert shell.returncode == 0
        assert out.decode().strip() == f"cancelled {task.task_id}"
        assert (await cancelled_result(task)).reason == "from a shell"
