"""The app of the end-to-end tests: a ZeroMQ worker host, schedules in Redis, runs in a file."""

from __future__ import annotations

import os
from pathlib import Path

from taskq import Context, TaskiqDepends
from taskq_scheduler import RedisScheduleSource, TaskiqScheduler
from taskq_zmq import ZeroMQBroker

ADDRESS = os.environ["SCHED_ADDRESS"]
broker = ZeroMQBroker(zmq_pub_host=ADDRESS, zmq_sub_host=ADDRESS, bind="worker")
source = RedisScheduleSource(os.environ["SCHED_REDIS_URL"], prefix=os.environ["SCHED_PREFIX"])
scheduler = TaskiqScheduler(broker, [source])


@broker.task(task_name="record")
async def record(tag: str, context: Context = TaskiqDepends()) -> None:
    message = context.message
    line = f"{tag} {message.labels['idempotency_key']} {message.task_id}\n"
    with Path(os.environ["SCHED_RUNS"]).open("a") as runs:  # noqa: ASYNC230 - one short line
        runs.write(line)


def make_scheduler() -> TaskiqScheduler:
    return scheduler
