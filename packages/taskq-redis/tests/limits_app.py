"""The app of the limit and unique task tests, run by ``taskq worker limits_app:broker``.

Configured by ``LIMITS_APP_URL``, ``LIMITS_APP_PREFIX``, ``LIMITS_APP_SLOT_LEASE_S`` (the
limiter's ``slot_lease_s``, default 60) and ``LIMITS_APP_OUT``, a directory
where each worker process appends the start of each ``rated`` run (microseconds of the
wall clock, taken first thing in the task) to ``<pid>.starts``, and the time the limiter
allowed it (milliseconds of Redis's clock, read from the limiter's record) to
``<pid>.grants``. The other tasks record what
they did in Redis under the prefix: ``:running``/``:peak`` (``bounded`` runs at once, and the
most seen), ``:unique-runs`` (runs of ``once``, which waits for ``:finish`` to end).

Run as a client, ``python limits_app.py send N`` kicks ``rated`` N times (``send-bounded N``:
``bounded``, which counts its finished runs in ``:done``; ``send-hold N``: ``hold``, which
holds its only concurrency place for an hour and writes its pid to ``:holder``) and
``python limits_app.py unique N`` kicks ``once`` N times at once (once it pops its item of
the list ``:go``), then prints the task ids it got back, one per line.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import redis.asyncio as aioredis

from taskq import Context, TaskiqDepends, TaskiqEvents, TaskiqState
from taskq_redis import RedisLimiter, RedisStreamBroker, RedisUniqueStore

URL = os.environ["LIMITS_APP_URL"]
PREFIX = os.environ["LIMITS_APP_PREFIX"]
OUT = Path(os.environ["LIMITS_APP_OUT"])

LIMITER = RedisLimiter(
    URL, key_prefix=PREFIX, slot_lease_s=float(os.environ.get("LIMITS_APP_SLOT_LEASE_S", "60"))
)
broker = (
    RedisStreamBroker(URL, key_prefix=PREFIX, delay_check_interval_s=0.05)
    .with_limiter(LIMITER)
    .with_unique_store(RedisUniqueStore(URL, key_prefix=PREFIX))
)
_ENTER = """
local running = redis.call('INCR', KEYS[1])
if running > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], running)
end
return running
"""
_client: aioredis.Redis | None = None
_starts: TextIO | None = None
_grants: TextIO | None = None


def client() -> aioredis.Redis:
    global _client
    if _client is None:
        _client = aioredis.Redis.from_url(URL)
    return _client


@broker.on_event(TaskiqEvents.WORKER_STARTUP)
def open_starts(state: TaskiqState) -> None:
    global _starts, _grants
    _starts = open(OUT / f"{os.getpid()}.starts", "a", buffering=1)  # noqa: SIM115
    _grants = open(OUT / f"{os.getpid()}.grants", "a", buffering=1)  # noqa: SIM115


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
async def close(state: TaskiqState) -> None:
    if _client is not None:
        await _client.aclose()


@broker.task(task_name="limits_app:rated", rate_limit="100/s")
async def rated(context: Context = TaskiqDepends()) -> None:
    assert _starts is not None
    assert _grants is not None
    _starts.write(f"{time.time_ns() // 1000}\n")
    # the limiter's record of this start (``<task id>:<ms>``, scored by Redis's clock)
    starts_key = LIMITER.keys("limits_app:rated")[0]
    match = f"{context.message.task_id}:*"
    async for _, score in client().zscan_iter(starts_key, match=match):
        _grants.write(f"{int(score)}\n")


@broker.task(task_name="limits_app:bounded", max_concurrency=3)
async def bounded() -> None:
    await client().eval(_ENTER, 2, f"{PREFIX}:running", f"{PREFIX}:peak")
    await asyncio.sleep(0.02)
    await client().decr(f"{PREFIX}:running")
    await client().incr(f"{PREFIX}:done")


@broker.task(task_name="limits_app:hold", max_concurrency=1)
async def hold() -> None:
    await client().set(f"{PREFIX}:holder", os.getpid())
    await asyncio.sleep(3600)


@broker.task(task_name="limits_app:once")
async def once() -> None:
    await client().incr(f"{PREFIX}:unique-runs")
    await client().blpop([f"{PREFIX}:finish"], timeout=120)


async def send(task: Any, count: int) -> None:
    async with broker:
        await asyncio.gather(*(task.kiq() for _ in range(count)))
    print("sent", count, flush=True)


async def send_unique(count: int) -> None:
    async with broker:
        print("ready", flush=True)
        await client().blpop([f"{PREFIX}:go"], timeout=120)
        tasks = await asyncio.gather(
            *(once.kicker().with_unique(ttl=300).kiq() for _ in range(count))
        )
        print("\n".join(task.task_id for task in tasks), flush=True)
    await client().aclose()


if __name__ == "__main__":
    action, number = sys.argv[1], int(sys.argv[2])
    if action == "unique":
        asyncio.run(send_unique(number))
    else:
        task = {"send-bounded": bounded, "send-hold": hold}.get(action, rated)
        asyncio.run(send(task, number))
