"""The storage version of the classic queues a broker declares (``x-queue-version``)."""

from __future__ import annotations

import uuid

import pytest

from taskq import BrokerMessage
from taskq_amqp import AmqpBroker


async def declared_queues(broker: AmqpBroker) -> list[str]:
    """Have the broker declare a delay bucket too; return work, dead-letter and bucket queue."""
    await broker.kick(BrokerMessage(uuid.uuid4().hex, "amqp:test", b"later", {"delay": 60}))
    names = broker.queue_names()
    assert len(names) == 3
    return names


async def test_classic_queues_take_the_servers_storage_version_by_default(new_broker, rabbit_admin):
    broker = await new_broker(worker=False)
    for name in await declared_queues(broker):
        assert "x-queue-version" not in rabbit_admin.queue_arguments(name), name


@pytest.mark.parametrize("version", [1, 2])
async def test_the_classic_queue_version_can_be_chosen(new_broker, rabbit_admin, version):
    broker = await new_broker(worker=False, classic_queue_version=version)
    for name in await declared_queues(broker):
        assert rabbit_admin.queue_arguments(name).get("x-queue-version") == version, name


async def test_a_quorum_work_queue_keeps_classic_dead_letters_of_that_version(
    new_broker, rabbit_admin
):
    broker = await new_broker(worker=False, queue_type="quorum", classic_queue_version=2)
    work, dead_letters, bucket = await declared_queues(broker)
    assert "x-queue-version" not in rabbit_admin.queue_arguments(work)
    assert rabbit_admin.queue_arguments(dead_letters)["x-queue-version"] == 2
    assert rabbit_admin.queue_arguments(bucket)["x-queue-version"] == 2


def test_an_unknown_classic_queue_version_is_refused():
    with pytest.raises(ValueError, match="classic_queue_version must be 1, 2 or None"):
        AmqpBroker(classic_queue_version=3)  # type: ignore[arg-type]
