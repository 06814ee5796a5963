"""The cancellation store suite: records with their reason, kept ``ttl_s``, heard by listeners.

The expiry check shortens the store's ``ttl_s`` (the contract's attribute, read by each
``cancel``). A store that declares ``cross_process`` must show each instance what another
recorded, as workers and clients in other processes see it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator

import pytest

from taskq.abc.cancellation import Cancellation, CancellationStore
from taskq.capabilities import Capability
from taskq_conformance.instances import NewCancellationStore

#: Seconds a listener may take to hear of a cancellation (the contract says about half a second).
HEARING_TIMEOUT = 10.0
#: Seconds a short-lived record is kept in the expiry check.
SHORT_TTL_S = 0.3
#: Seconds after its TTL a record may still be seen.
EXPIRY_TIMEOUT = 10.0


def fresh_task_id() -> str:
    """A task id no other check (or run against the same store) uses."""
    return f"conformance-{uuid.uuid4().hex}"


async def test_it_is_a_cancellation_store(
    taskq_new_cancellation_store: NewCancellationStore,
) -> None:
    async with taskq_new_cancellation_store() as store:
        assert isinstance(store, CancellationStore)


async def test_a_cancellation_is_recorded_with_its_reason(
    taskq_new_cancellation_store: NewCancellationStore,
) -> None:
    task_id, other = fresh_task_id(), fresh_task_id()
    async with taskq_new_cancellation_store() as store:
        assert await store.cancellation(task_id) is None
        await store.cancel(task_id, "no longer needed")
        await store.cancel(other)
        assert await store.cancellation(task_id) == Cancellation(task_id, "no longer needed")
        assert await store.cancellation(other) == Cancellation(other, "")
        assert await store.cancellation(fresh_task_id()) is None, "an id nobody cancelled"


async def test_a_cancellation_expires_after_its_ttl(
    taskq_new_cancellation_store: NewCancellationStore,
) -> None:
    task_id = fresh_task_id()
    async with taskq_new_cancellation_store() as store:
        store.ttl_s = SHORT_TTL_S
        await store.cancel(task_id, "soon gone")
        assert await store.cancellation(task_id) is not None
        deadline = time.monotonic() + SHORT_TTL_S + EXPIRY_TIMEOUT
        while await store.cancellation(task_id) is not None:
            assert time.monotonic() < deadline, (
                f"the cancellation was still kept {EXPIRY_TIMEOUT} s after its ttl_s"
            )
            await asyncio.sleep(0.05)


async def test_a_listener_hears_of_each_later_cancellation(
    taskq_new_cancellation_store: NewCancellationStore,
) -> None:
    first, second = fresh_task_id(), fresh_task_id()
    async with taskq_new_cancellation_store() as store:
        heard = await store.listen()
        try:
            await store.cancel(first, "one")
            await store.cancel(second, "two")
            assert await _heard(heard, {first, second}) == {
                Cancellation(first, "one"),
                Cancellation(second, "two"),
            }
        finally:
            await heard.aclose()


@pytest.mark.taskq_requires(Capability.CROSS_PROCESS)
async def test_instances_see_each_others_cancellations(
    taskq_new_cancellation_store: NewCancellationStore,
) -> None:
    task_id = fresh_task_id()
    async with (
        taskq_new_cancellation_store() as canceller,
        taskq_new_cancellation_store() as worker,
    ):
        heard = await worker.listen()
        try:
            await canceller.cancel(task_id, "from elsewhere")
            assert await worker.cancellation(task_id) == Cancellation(task_id, "from elsewhere"), (
                "another instance does not see the cancellation"
            )
            assert await _heard(heard, {task_id}) == {Cancellation(task_id, "from elsewhere")}
        finally:
            await heard.aclose()


async def _heard(
    listener: AsyncGenerator[Cancellation, None], task_ids: set[str]
) -> set[Cancellation]:
    """The cancellations of ``task_ids`` that ``listener`` yields (others are skipped)."""
    heard: set[Cancellation] = set()
    deadline = time.monotonic() + HEARING_TIMEOUT
    while {c.task_id for c in heard} != task_ids:
        left = deadline - time.monotonic()
        try:
            cancellation = await asyncio.wait_for(listener.__anext__(), max(left, 0.001))
        except asyncio.TimeoutError:
            missing = sorted(task_ids - {c.task_id for c in heard})
            pytest.fail(f"no listener heard of {missing} within {HEARING_TIMEOUT} s")
        if cancellation.task_id in task_ids:
            heard.add(cancellation)
    return heard
