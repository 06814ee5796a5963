"""The app of the cross-process tests, run by ``taskq worker redis_app:broker`` (not collected).

Configured by the environment: ``REDIS_APP_URL``, ``REDIS_APP_PREFIX``, ``REDIS_APP_LEASE_S``,
``REDIS_APP_MAX_DELIVERIES``, ``REDIS_APP_CLIENT_NAME`` (the name of the workers' connections)
and ``REDIS_APP_OUT``, a directory where each worker process writes ``<pid>.ready`` when
started and appends to ``<pid>.ran`` the number of each task it starts (``<pid>.done`` once it
finished). With ``REDIS_APP_RESULTS=1``, results are stored as ``<task id>.result`` files there
too; with ``REDIS_APP_EVENTS`` (an event store URL), clients and workers record task events.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from taskq import AsyncResultBackend, TaskiqEvents, TaskiqResult
from taskq.event_stores import open_event_store
from taskq.exceptions import ResultGetError
from taskq_redis import RedisStreamBroker

OUT = Path(os.environ["REDIS_APP_OUT"])


class FileResultBackend(AsyncResultBackend[Any]):
    """Writes whether each task failed, and its error, to ``<task id>.result`` in ``OUT``."""

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        (OUT / f"{task_id}.result").write_text(f"{result.is_err} {result.error!r}")

    async def is_result_ready(self, task_id: str) -> bool:
        return (OUT / f"{task_id}.result").exists()

    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[Any]:
        raise ResultGetError("read the .result files instead")


broker = RedisStreamBroker(
    os.environ["REDIS_APP_URL"],
    key_prefix=os.environ["REDIS_APP_PREFIX"],
    lease_s=float(os.environ.get("REDIS_APP_LEASE_S", "30")),
    max_deliveries=int(os.environ.get("REDIS_APP_MAX_DELIVERIES", "5")),
    client_name=os.environ.get("REDIS_APP_CLIENT_NAME", "taskq-test-client"),
    result_backend=FileResultBackend() if os.environ.get("REDIS_APP_RESULTS") else None,
)
if os.environ.get("REDIS_APP_EVENTS"):
    broker.with_event_store(open_event_store(os.environ["REDIS_APP_EVENTS"]))
_files: dict[str, Any] = {}


def _log(kind: str, n: int) -> None:
    log = _files.get(kind)
    if log is None:
        log = _files[kind] = open(OUT / f"{os.getpid()}.{kind}", "a", buffering=1)  # noqa: SIM115
    log.write(f"{n}\n")


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
def ready(state: object) -> None:
    (OUT / f"{os.getpid()}.ready").write_text("ready")


@broker.task(task_name="redis_app:record")
async def record(n: int, pause: float = 0.0) -> None:
    _log("ran", n)
    if pause:
        await asyncio.sleep(pause)
    _log("done", n)


@broker.task(task_name="redis_app:exit")
async def exit_worker() -> None:
    sys.exit("a task that ends its process")


@broker.task(task_name="redis_app:stop")
async def stop_worker() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # a graceful stop of its own process, while it runs
    await asyncio.sleep(3600)


async def send(count: int, pause: float, first: str = "") -> None:
    """Kick ``record(0 .. count - 1)`` in concurrent chunks (as a client process).

    ``first`` sends a task before them: ``exit`` (it calls ``sys.exit()``) or ``stop`` (it
    stops its worker); its id is printed.
    """
    await broker.startup()
    if first:
        task = await {"exit": exit_worker, "stop": stop_worker}[first].kiq()
        print(first, task.task_id, flush=True)
    chunk = 1000
    for start in range(0, count, chunk):
        numbers = range(start, min(start + chunk, count))
        await asyncio.gather(*(record.kiq(n, pause) for n in numbers))
    await broker.shutdown()
    print("sent", count, flush=True)


if __name__ == "__main__":
    pause = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    asyncio.run(send(int(sys.argv[1]), pause, *sys.argv[3:4]))
