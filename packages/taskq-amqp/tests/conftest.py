"""Fixtures: the RabbitMQ server of the tests (skip without one, fail on CI) and fresh brokers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from taskq_amqp import AmqpBroker
from taskq_amqp.testing import amqp_url, delete_queues_async, unique_queue_name

# the RabbitMQ server of the tests (skip without one, fail on CI)
__all__ = ["amqp_url"]


@pytest.fixture
def queue_name(amqp_url: str) -> Any:
    """A queue name of this test alone."""
    return unique_queue_name()


@pytest.fixture
async def new_broker(amqp_url: str, queue_name: str) -> AsyncIterator[Callable[..., Any]]:
    """Make started brokers on the test's queue (workers by default); delete its queues after."""
    made: list[AmqpBroker] = []

    async def new(worker: bool = True, **options: Any) -> AmqpBroker:
        broker = AmqpBroker(amqp_url, queue_name, **options)
        broker.is_worker_process = worker
        await broker.startup()
        made.append(broker)
        return broker

    yield new
    names = {name for broker in made for name in broker.queue_names()}
    for broker in made:
        await broker.shutdown()
    await delete_queues_async(amqp_url, sorted(names))
