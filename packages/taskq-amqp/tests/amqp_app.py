"""The app of the cross-process tests, run by ``taskq worker amqp_app:broker`` (not collected).

Configured by the environment: ``AMQP_APP_URL``, ``AMQP_APP_QUEUE``, ``AMQP_APP_MAX_PRIORITY``,
``AMQP_APP_MAX_DELIVERIES`` and ``AMQP_APP_OUT``, a directory where each worker process writes
``<pid>.ready`` when started and appends to ``<pid>.ran`` the number of each task it starts
(``<pid>.done`` once it finished).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from taskq import Context, TaskiqDepends, TaskiqEvents
from taskq_amqp import AmqpBroker

OUT = Path(os.environ["AMQP_APP_OUT"])
_priority = os.environ.get("AMQP_APP_MAX_PRIORITY")

broker = AmqpBroker(
    os.environ["AMQP_APP_URL"],
    os.environ["AMQP_APP_QUEUE"],
    max_priority=int(_priority) if _priority else None,
    max_deliveries=int(os.environ.get("AMQP_APP_MAX_DELIVERIES", "5")),
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


@broker.task(task_name="amqp_app:record")
async def record(n: int, pause: float = 0.0) -> None:
    _log("ran", n)
    if pause:
        await asyncio.sleep(pause)
    _log("done", n)


@broker.task(task_name="amqp_app:crash")
async def crash() -> None:
    os._exit(1)  # a task that kills its worker process every time


@broker.task(task_name="amqp_app:refuse")
async def refuse(n: int, context: Context = TaskiqDepends()) -> None:
    context.reject()


async def send(count: int, pause: float, labels: dict[str, Any]) -> None:
    """Kick ``record(0 .. count - 1)`` in concurrent chunks (as a client process)."""
    await broker.startup()
    chunk = 1000
    kicker = record.kicker().with_labels(**labels)
    for start in range(0, count, chunk):
        numbers = range(start, min(start + chunk, count))
        await asyncio.gather(*(kicker.kiq(n, pause) for n in numbers))
    await broker.shutdown()
    print("sent", count, flush=True)


if __name__ == "__main__":
    pause = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    asyncio.run(send(int(sys.argv[1]), pause, {}))
