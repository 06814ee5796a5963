"""A client and worker program for the cross-process tests (run as a script, not collected).

Workers record the numbers they ran, keep ``<out>.<pid>.count`` up to date with how many, and
write the numbers to ``<out>.<pid>`` when they stop; each task takes ``TASKQ_TEST_TASK_S``
seconds (default 0), at most ``TASKQ_TEST_MAX_ASYNC`` at once (default: no limit). The client
sends ``record(0)`` ... ``record(N - 1)`` one kick at a time (``client N``) or in batches
(``batches N SIZE``); ``client N hold`` then stays up until its standard input closes, to
dispatch what workers hand back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from taskq import Receiver, TaskiqEvents, TaskiqMessage
from taskq_zmq import ZeroMQBroker

ADDRESS = os.environ["TASKQ_TEST_ZMQ_ADDRESS"]
OUT = os.environ.get("TASKQ_TEST_OUT", "")
TASK_S = float(os.environ.get("TASKQ_TEST_TASK_S", "0"))
MAX_ASYNC = int(os.environ.get("TASKQ_TEST_MAX_ASYNC", "0")) or None
broker = ZeroMQBroker(ADDRESS, ADDRESS)
ran: list[int] = []


@broker.task(task_name="zmq_app:record")
async def record(n: int) -> None:
    if TASK_S:
        await asyncio.sleep(TASK_S)
    ran.append(n)


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
def write_out(state: object) -> None:
    with open(f"{OUT}.{os.getpid()}", "w") as out:
        out.write("\n".join(map(str, ran)))
    Path(f"{OUT}.{os.getpid()}.count").write_text(str(len(ran)))


async def work() -> None:
    broker.is_worker_process = True
    await broker.startup()
    finish = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, finish.set)
    counting = asyncio.create_task(keep_count())
    print("ready", flush=True)
    await Receiver(broker, max_async_tasks=MAX_ASYNC).listen(finish)
    counting.cancel()
    await broker.shutdown()


async def keep_count() -> None:
    while True:
        Path(f"{OUT}.{os.getpid()}.count").write_text(str(len(ran)))  # noqa: ASYNC240 - tiny
        await asyncio.sleep(0.2)


async def send(count: int, hold: bool = False) -> None:
    await broker.startup()
    for n in range(count):
        await record.kiq(n)
    print("sent", count, flush=True)
    if hold:
        await asyncio.to_thread(sys.stdin.read)
    await broker.shutdown()


async def send_batches(count: int, size: int) -> None:
    await broker.startup()
    for start in range(0, count, size):
        await broker.kick_many(
            [
                broker.formatter.dumps(TaskiqMessage(f"t{n}", "zmq_app:record", {}, [n], {}))
                for n in range(start, min(start + size, count))
            ]
        )
    await broker.shutdown()
    print("sent", count, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        asyncio.run(work())
    elif sys.argv[1] == "batches":
        asyncio.run(send_batches(int(sys.argv[2]), int(sys.argv[3])))
    else:
        asyncio.run(send(int(sys.argv[2]), hold=sys.argv[3:] == ["hold"]))
