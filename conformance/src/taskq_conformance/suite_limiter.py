"""The limiter suite: rate and concurrency decisions every `TaskLimiter` must make right."""

from __future__ import annotations

import asyncio
import time
import uuid

from taskq.abc.limiter import TaskLimiter
from taskq.control.limits import RateLimit
from taskq_conformance.instances import NewLimiter

#: Seconds a decision may be off by: the limiter's clock and this process's may differ a little.
CLOCK_SLACK_S = 0.05


def fresh_key() -> str:
    """A key no other check (or run against the same server) uses."""
    return f"conformance-{uuid.uuid4().hex}"


async def test_it_is_a_task_limiter(taskq_new_limiter: NewLimiter) -> None:
    async with taskq_new_limiter() as limiter:
        assert isinstance(limiter, TaskLimiter)


async def test_the_rate_allows_count_starts_then_says_how_long_to_wait(
    taskq_new_limiter: NewLimiter,
) -> None:
    key, rate = fresh_key(), RateLimit(3, 1.0)
    async with taskq_new_limiter() as limiter:
        granted = [await limiter.acquire(key, f"t{n}", rate, None) for n in range(3)]
        assert granted == [0.0, 0.0, 0.0], "the first 3 starts of a 3/s limit must be allowed"
        wait_s = await limiter.acquire(key, "t3", rate, None)
        assert 0 < wait_s <= 1.0 + CLOCK_SLACK_S, f"a 4th start within 1 s: told to wait {wait_s}"


async def test_the_window_slides_a_refused_start_is_allowed_after_the_wait(
    taskq_new_limiter: NewLimiter,
) -> None:
    key, rate = fresh_key(), RateLimit(2, 0.5)
    async with taskq_new_limiter() as limiter:
        await limiter.acquire(key, "a", rate, None)
        await limiter.acquire(key, "b", rate, None)
        wait_s = await limiter.acquire(key, "c", rate, None)
        assert wait_s > 0
        await asyncio.sleep(wait_s + CLOCK_SLACK_S)
        assert await limiter.acquire(key, "c", rate, None) == 0.0


async def test_a_refused_start_does_not_count(taskq_new_limiter: NewLimiter) -> None:
    key, rate = fresh_key(), RateLimit(1, 0.5)
    async with taskq_new_limiter() as limiter:
        assert await limiter.acquire(key, "a", rate, None) == 0.0
        started = time.monotonic()
        while True:  # a run asking again every 50 ms starts once the window has moved on
            wait_s = await limiter.acquire(key, "b", rate, None)
            waited = time.monotonic() - started
            if wait_s == 0.0:
                break
            assert waited < 0.5 + 10 * CLOCK_SLACK_S, "refused starts were counted as starts"
            await asyncio.sleep(min(wait_s, 0.05))


async def test_keys_are_counted_apart(taskq_new_limiter: NewLimiter) -> None:
    rate = RateLimit(1, 60.0)
    async with taskq_new_limiter() as limiter:
        first, second = fresh_key(), fresh_key()
        assert await limiter.acquire(first, "a", rate, None) == 0.0
        assert await limiter.acquire(first, "b", rate, None) > 0
        assert await limiter.acquire(second, "b", rate, None) == 0.0


async def test_concurrent_decisions_never_grant_more_than_the_limit(
    taskq_new_limiter: NewLimiter,
) -> None:
    key, rate = fresh_key(), RateLimit(5, 60.0)
    async with taskq_new_limiter() as limiter:
        decisions = await asyncio.gather(
            *(limiter.acquire(key, f"t{n}", rate, None) for n in range(40))
        )
        assert sum(wait_s == 0.0 for wait_s in decisions) == 5


async def test_a_concurrency_place_is_held_until_released(taskq_new_limiter: NewLimiter) -> None:
    key = fresh_key()
    async with taskq_new_limiter() as limiter:
        assert await limiter.acquire(key, "a", None, 2) == 0.0
        assert await limiter.acquire(key, "b", None, 2) == 0.0
        assert await limiter.acquire(key, "c", None, 2) > 0
        await limiter.release(key, "unknown")  # releasing a place nobody holds changes nothing
        assert await limiter.acquire(key, "c", None, 2) > 0
        await limiter.release(key, "a")
        assert await limiter.acquire(key, "c", None, 2) == 0.0


async def test_concurrent_decisions_never_hand_out_more_places(
    taskq_new_limiter: NewLimiter,
) -> None:
    key = fresh_key()
    async with taskq_new_limiter() as limiter:
        decisions = await asyncio.gather(
            *(limiter.acquire(key, f"t{n}", None, 3) for n in range(40))
        )
        assert sum(wait_s == 0.0 for wait_s in decisions) == 3


async def test_wait_returns_within_the_seconds_given(taskq_new_limiter: NewLimiter) -> None:
    async with taskq_new_limiter() as limiter:
        started = time.monotonic()
        await asyncio.wait_for(limiter.wait(fresh_key(), 0.2), 5)
        assert time.monotonic() - started < 2
