"""The retry middlewares record each retry, with its number and delay, in the event store."""

from __future__ import annotations

import pytest

from taskq.event_stores import InMemoryEventStore
from taskq.task_events import EventKind
from taskq_inmemory import InMemoryBroker
from taskq_middlewares import SimpleRetryMiddleware, SmartRetryMiddleware


@pytest.mark.parametrize(
    ("middleware", "delays"),
    [
        (SimpleRetryMiddleware(default_retry_count=3), [0.0, 0.0]),
        (SmartRetryMiddleware(default_retry_count=3, default_delay=0.01), [0.01, 0.01]),
    ],
    ids=["simple", "smart"],
)
async def test_each_retry_is_recorded_after_the_failure(
    middleware: SimpleRetryMiddleware, delays: list[float]
) -> None:
    store = InMemoryEventStore()
    broker = InMemoryBroker().with_event_store(store).with_middlewares(middleware)

    @broker.task(retry_on_error=True)
    async def flaky() -> None:
        raise ConnectionError("try again")

    async with broker:
        task = await flaky.kiq()
        await broker.wait_all()
    events = await store.task_events(task.task_id)
    retried = [event for event in events if event.kind is EventKind.RETRIED]
    assert [(event.retry, event.retry_delay) for event in retried] == list(
        zip([1, 2], delays, strict=True)
    )
    kinds = [event.kind for event in events]
    assert kinds.count(EventKind.FAILED) == 3
    first_failure = kinds.index(EventKind.FAILED)
    # the retry is timed before it is sent: a worker that runs it at once cannot finish first
    assert kinds[first_failure + 1 : first_failure + 3] == [EventKind.RETRIED, EventKind.SENT]
