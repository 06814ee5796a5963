"""Messages another client put in the work queue: whatever they hold, a worker dead-letters
them with a reason and goes on, without losing its connection."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aiormq
from pamqp.commands import Basic

from taskq import Receiver
from taskq.testing import eventually
from taskq_amqp import AmqpBroker


async def publish_foreign(url: str, queue: str, body: bytes, properties: Basic.Properties) -> None:
    """Publish as another client would, straight to ``queue``, confirmed."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        confirmation = await channel.basic_publish(body, routing_key=queue, properties=properties)
        assert isinstance(confirmation, Basic.Ack)
    finally:
        await connection.close()


async def take_one(broker: AmqpBroker) -> Any:
    async for item in broker.listen():
        return item
    raise AssertionError("listen() ended")


async def test_a_dead_letter_whose_headers_fill_a_frame_keeps_its_body_and_reason(
    amqp_url, new_broker
):
    """RabbitMQ takes headers up to its frame size; taskq's dead-letter headers on top of them
    made a frame RabbitMQ refuses by closing the whole connection, over and over."""
    broker = await new_broker()
    big = {"x-big": "h" * 130_990, "x-small": "kept?"}
    await publish_foreign(amqp_url, broker.queue_name, b"body", Basic.Properties(headers=big))
    item = await asyncio.wait_for(take_one(broker), 30)
    connection = await broker.connection.connection()
    await asyncio.wait_for(item.reject("ValueError: too big"), 30)
    assert await broker.connection.connection() is connection, "the connection was lost"
    (letter,) = await broker.dead_letters.list()
    assert letter.payload == b"body"
    assert letter.reason == "ValueError: too big"
    assert letter.deliveries == 1


async def test_a_worker_dead_letters_foreign_garbage_and_goes_on(amqp_url, new_broker, caplog):
    broker = await new_broker()
    ran: list[int] = []

    @broker.task(task_name="amqp:foreign")
    async def record(n: int) -> None:
        ran.append(n)

    garbage = [
        (os.urandom(1000), Basic.Properties()),
        (b"", Basic.Properties()),
        (b'{"a": 1}', Basic.Properties(content_type="application/x-nope", content_encoding="zz")),
        (b"x", Basic.Properties(priority=255, headers={"nested": {"a": [1, None]}})),
        (b"y", Basic.Properties(headers={"x-big": "h" * 131_000})),
    ]
    for body, properties in garbage:
        await publish_foreign(amqp_url, broker.queue_name, body, properties)
    await record.kiq(1)
    worker = asyncio.create_task(Receiver(broker).listen())
    try:
        await eventually(lambda: ran == [1], timeout=60)
        dead = broker.dead_letters

        async def all_dead() -> bool:
            return await dead.count() == len(garbage)

        await eventually(all_dead, timeout=60)
        letters = await dead.list()
        assert sorted(letter.payload for letter in letters) == sorted(b for b, _ in garbage)
        assert all(letter.reason.startswith("MessageDecodeError") for letter in letters)
    finally:
        await broker.shutdown()
        await asyncio.gather(worker, return_exceptions=True)
    rejected = [r for r in caplog.records if "cannot be decoded" in r.getMessage()]
    assert len(rejected) == len(garbage), "each foreign message is logged once"
