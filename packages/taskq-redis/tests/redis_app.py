"""The app of the cross-process tests, run by ``taskq worker redis_app:broker`` (not collected).

Configured by the environment: ``REDIS_APP_URL``, ``REDIS_APP_PREFIX``, ``REDIS_APP_LEASE_S``,
``REDIS_APP_CLIENT_NAME`` (the name of the workers' connections) and ``REDIS_APP_OUT``, a
directory where each worker process writes ``<pid>.ready`` when started and appends to
``<pid>.ran`` the number of each task it starts (``<pid>.done`` once it finished).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from taskq import TaskiqEvents
from taskq_redis import RedisStreamBroker

OUT = Path(os.environ["REDIS_APP_OUT"])
broker = RedisStreamBroker(
    os.environ["REDIS_APP_URL"],
    key_prefix=os.environ["REDIS_APP_PREFIX"],
    lease_s=float(os.environ.get("REDIS_APP_LEASE_S", "30")),
    client_name=os.environ.get("REDIS_APP_CLIENT_NAME", "taskq-test-client"),
)
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


async def send(count: int, pause: float) -> None:
    """Kick ``record(0 .. count - 1)`` in concurrent chunks (as a client process)."""
    await broker.startup()
    chunk = 1000
    for start in range(0, count, chunk):
        numbers = range(start, min(start + chunk, count))
        await asyncio.gather(*(record.kiq(n, pause) for n in numbers))
    await broker.shutdown()
    print("sent", count, flush=True)


if __name__ == "__main__":
    asyncio.run(send(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0))
