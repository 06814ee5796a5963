"""Sync calls handed to threads: every outcome reaches its awaiter, batched or not."""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from taskq import InMemoryBroker
from taskq.receiver.handoff import ThreadHandoff


async def test_every_call_of_a_crowd_gets_its_own_outcome() -> None:
    handoff = ThreadHandoff(asyncio.get_running_loop())
    with ThreadPoolExecutor(4) as pool:

        def call(i: int) -> int:
            if i % 7 == 0:
                raise ValueError(i)
            return i * 2

        futures = [handoff.run(pool, functools.partial(call, i)) for i in range(300)]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
    for i, outcome in enumerate(outcomes):
        if i % 7 == 0:
            assert isinstance(outcome, ValueError)
            assert outcome.args == (i,)
        else:
            assert outcome == i * 2


async def test_a_call_cancelled_before_a_thread_takes_it_does_not_run() -> None:
    handoff = ThreadHandoff(asyncio.get_running_loop())
    release, ran = threading.Event(), threading.Event()
    pool = ThreadPoolExecutor(1)
    try:
        busy = handoff.run(pool, release.wait)
        waiting = handoff.run(pool, ran.set)
        waiting.cancel()
        release.set()
        assert await busy is True
    finally:
        pool.shutdown(wait=True)
    assert not ran.is_set()


async def test_a_sync_task_raising_stop_iteration_fails_instead_of_hanging() -> None:
    broker = InMemoryBroker()

    @broker.task
    def stops() -> None:
        raise StopIteration("done")

    await broker.startup()
    try:
        result = await (await stops.kiq()).wait_result(timeout=30)
    finally:
        await broker.shutdown()
    assert result.is_err
    with pytest.raises(RuntimeError, match="StopIteration"):
        result.raise_for_error()
