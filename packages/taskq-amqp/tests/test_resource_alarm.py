"""A RabbitMQ memory alarm, on a node of these tests' own: it blocks every publishing connection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from taskq.testing import cancel_until_done, eventually
from taskq_amqp import AmqpBroker, SendUnavailableError
from taskq_amqp.testing import Node, throwaway_node

from .conftest import message

#: A watermark no node stays under: the memory alarm goes off at once.
ALARM = "0.000001"
#: The default watermark: no alarm.
NO_ALARM = "0.4"


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    with throwaway_node() as started:
        yield started


@pytest.fixture
async def broker(node: Node) -> AsyncIterator[AmqpBroker]:
    made = AmqpBroker(node.url, "alarm", send_timeout_s=1.0)
    await made.startup()
    yield made
    node.ctl("set_vm_memory_high_watermark", NO_ALARM)
    await made.delete_queues()
    await made.shutdown()


def counts(node: Node) -> tuple[int, int]:
    """The messages of the work queue: ready, and delivered but not acknowledged."""
    listed = node.ctl("list_queues", "--quiet", "name", "messages_ready", "messages_unacknowledged")
    for line in listed.splitlines():
        name, ready, unacked = line.split()
        if name == "alarm":
            return int(ready), int(unacked)
    raise AssertionError(f"no queue 'alarm' in {listed!r}")


async def test_a_worker_acknowledges_while_an_alarm_blocks_its_publishing(
    node: Node, broker: AmqpBroker, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(5):
        await broker.kick(message(b"%d" % n))
    received: list[Any] = []
    listening = broker.listen()
    for _ in range(5):
        received.append(await asyncio.wait_for(anext(listening), 30))
    node.ctl("set_vm_memory_high_watermark", ALARM)
    # a task's own kiq (a retry, say) meets the alarm: its connection is blocked
    with caplog.at_level(logging.WARNING, logger="aiormq.connection"):
        kicking = asyncio.ensure_future(broker.kick(message(b"retry")))
        await eventually(lambda: "was blocked by" in caplog.text, timeout=10)
    for item in received:
        await item.ack()
    # the acknowledgements stayed unread on the blocked connection before: 5 unacknowledged
    await eventually(lambda: counts(node) == (0, 0), timeout=10)
    await cancel_until_done(kicking)
    await listening.aclose()


async def test_a_kick_blocked_by_an_alarm_says_so_and_keeps_its_connection(
    node: Node, broker: AmqpBroker, caplog: pytest.LogCaptureFixture
) -> None:
    connection = await broker.connection.connection()
    node.ctl("set_vm_memory_high_watermark", ALARM)
    with (
        caplog.at_level(logging.WARNING, logger="taskq.amqp"),
        pytest.raises(SendUnavailableError) as caught,
    ):
        await broker.kick(message(b"blocked"))
    # it said "did not answer ... check that it runs and that the URL is right"
    assert "blocked publishing for 1 s" in str(caught.value)
    assert "memory or disk alarm" in str(caught.value)
    assert "opens a new connection" not in caplog.text, "a live connection was given up"
    node.ctl("set_vm_memory_high_watermark", NO_ALARM)
    await broker.kick(message(b"after"))  # on the same connection, unblocked
    assert await broker.connection.connection() is connection
