"""The ZeroMQ broker in one process: load balancing, backpressure, hand-back, bad frames."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
import zmq
import zmq.asyncio

from taskq import BrokerMessage, Capability, SendTaskError
from taskq.testing import eventually
from taskq_zmq import ZeroMQBroker, protocol


def message(n: int) -> BrokerMessage:
    return BrokerMessage(f"id-{n}", "zmq:test", b"%d" % n, {})


async def worker(address: str, prefetch: int = 256) -> ZeroMQBroker:
    broker = ZeroMQBroker(address, address, prefetch=prefetch)
    broker.is_worker_process = True
    await broker.startup()
    return broker


async def collect(broker: ZeroMQBroker, into: list[bytes], delay: float = 0.0) -> None:
    async for payload in broker.listen():
        into.append(payload)
        if delay:
            await asyncio.sleep(delay)


@contextlib.asynccontextmanager
async def two_workers(
    address: str, delay: float
) -> AsyncIterator[tuple[ZeroMQBroker, ZeroMQBroker, list[bytes], list[bytes]]]:
    """Two started workers, each noting what it receives (``delay`` s per message)."""
    first, second = await worker(address), await worker(address)
    got_first: list[bytes] = []
    got_second: list[bytes] = []
    consumers = [
        asyncio.create_task(collect(first, got_first, delay)),
        asyncio.create_task(collect(second, got_second, delay)),
    ]
    try:
        yield first, second, got_first, got_second
    finally:
        await first.shutdown()
        await second.shutdown()
        await asyncio.gather(*consumers)


async def test_each_message_goes_to_exactly_one_of_two_workers(address):
    client = ZeroMQBroker(address, address)
    async with two_workers(address, 0.0005) as (_, _, got_first, got_second):
        await client.startup()
        await eventually(lambda: client.connected_workers == 2, what="both workers' room")
        for n in range(2000):
            await client.kick(message(n))
        await eventually(lambda: len(got_first) + len(got_second) == 2000, 30, what="2000")
    await client.shutdown()
    everything = sorted(int(p) for p in got_first + got_second)
    assert everything == list(range(2000))
    assert got_first
    assert got_second


async def test_kick_waits_for_a_worker_instead_of_dropping(address):
    client = ZeroMQBroker(address, address)
    await client.startup()
    pending = asyncio.create_task(client.kick(message(1)))
    await asyncio.sleep(0.3)
    assert not pending.done(), "kick returned although no worker could take the message"
    late = await worker(address)
    received: list[bytes] = []
    consumer = asyncio.create_task(collect(late, received))
    await asyncio.wait_for(pending, 10)
    await eventually(lambda: received, what="the message")
    assert received == [b"1"]
    await late.shutdown()
    await client.shutdown()
    await consumer


async def test_a_worker_takes_no_more_than_its_prefetch(address):
    client = ZeroMQBroker(address, address)
    await client.startup()
    small = await worker(address, prefetch=5)
    await eventually(lambda: client.connected_workers == 1, what="the worker's room")
    sends = [asyncio.create_task(client.kick(message(n))) for n in range(20)]
    intake = small._intake
    assert intake is not None
    await eventually(lambda: len(intake.buffer) == 5, what="the worker's 5 messages")
    await asyncio.sleep(0.3)  # a quiet period: a client ignoring the room would send more
    assert sum(task.done() for task in sends) == 5, "the worker was sent more than its room"
    assert len(intake.buffer) == 5
    received: list[bytes] = []
    consumer = asyncio.create_task(collect(small, received))
    await asyncio.wait_for(asyncio.gather(*sends), 10)
    await eventually(lambda: len(received) == 20, what="all 20 messages")
    assert sorted(int(p) for p in received) == list(range(20))
    await small.shutdown()
    await client.shutdown()
    await consumer


async def test_graceful_worker_stop_hands_back_what_it_did_not_start(address):
    client = ZeroMQBroker(address, address)
    await client.startup()
    leaving = await worker(address, prefetch=50)
    for n in range(30):
        await client.kick(message(n))
    intake = leaving._intake
    assert intake is not None
    await eventually(lambda: len(intake.buffer) == 30, what="the 30 messages at the worker")
    await leaving.shutdown()  # it never started any: all 30 go back to the client
    staying = await worker(address)
    received: list[bytes] = []
    consumer = asyncio.create_task(collect(staying, received))
    await eventually(lambda: len(received) == 30, what="the 30 messages handed back")
    assert sorted(int(p) for p in received) == list(range(30))
    await staying.shutdown()
    await client.shutdown()
    await consumer


async def test_malformed_frames_do_not_stop_a_worker(address, caplog):
    context = zmq.asyncio.Context()
    router = context.socket(zmq.ROUTER)
    router.bind(address)
    target = await worker(address)
    received: list[bytes] = []
    consumer = asyncio.create_task(collect(target, received))
    identity, report = await asyncio.wait_for(router.recv_multipart(), 5)
    assert protocol.parse_credit(report).free == 256
    junk = [
        [identity, b""],
        [identity, b"\xff" * 40],
        [identity, b"T", b"x"],
        [identity, b"Tshort"],
    ]
    for frames in junk:
        await router.send_multipart(frames)
    await router.send_multipart([identity, protocol.task(b"s" * 16, 1, b"good")])
    await eventually(lambda: received, what="the good task")
    assert received == [b"good"]
    assert caplog.text.count("does not fit the protocol") == 1  # once per peer
    assert target._intake.bad_frames.count == len(junk)  # type: ignore[union-attr]
    await target.shutdown()
    await consumer
    router.close(linger=0)
    context.term()


async def test_shutdown_fails_kicks_still_waiting(address):
    client = ZeroMQBroker(address, address)
    await client.startup()
    pending = asyncio.create_task(client.kick(message(1)))
    await asyncio.sleep(0.1)
    await client.shutdown()
    with pytest.raises(SendTaskError, match="shut down"):
        await pending


def test_options_are_checked_and_capabilities_honest():
    with pytest.raises(ValueError, match="prefetch"):
        ZeroMQBroker(prefetch=0)
    with pytest.raises(ValueError, match="bind"):
        ZeroMQBroker(bind="both")  # type: ignore[arg-type]
    assert ZeroMQBroker.capabilities == {
        Capability.LOAD_BALANCING,
        Capability.CROSS_PROCESS,
        Capability.INSPECT,
        Capability.BATCH_SEND,
    }


async def test_worker_side_may_bind_for_many_clients(address):
    host = ZeroMQBroker(address, address, bind="worker")
    host.is_worker_process = True
    await host.startup()
    received: list[bytes] = []
    consumer = asyncio.create_task(collect(host, received))
    clients = [ZeroMQBroker(address, address, bind="worker") for _ in range(2)]
    for n, client in enumerate(clients):
        await client.startup()
        await client.kick(message(n))
    await eventually(lambda: len(received) == 2, what="both messages")
    assert sorted(received) == [b"0", b"1"]
    for client in clients:
        await client.shutdown()
    await host.shutdown()
    await consumer
    logging.getLogger(__name__).info("done")


async def test_a_worker_sends_tasks_through_the_client_to_any_worker(address):
    client = ZeroMQBroker(address, address)
    async with two_workers(address, 0.001) as (first, _, got_first, got_second):
        await client.startup()
        await eventually(lambda: client.connected_workers == 2, what="both workers' room")
        for n in range(1000, 1020):  # tasks from the client first: the workers hear from it
            await client.kick(message(n))
        await eventually(lambda: got_first and got_second, what="a task at each worker")
        for n in range(200):  # as tasks running on the first worker would (retries, follow-ups)
            await first.kick(message(n))
        await eventually(lambda: len(got_first) + len(got_second) == 220, 30, what="220")
    await client.shutdown()
    everything = sorted(int(p) for p in got_first + got_second)
    assert everything == list(range(200)) + list(range(1000, 1020))
    assert any(int(p) < 1000 for p in got_second)  # dispatched by the client, not kept


async def test_a_stopped_worker_fails_its_kick_loudly(address):
    stopped = await worker(address)
    await stopped.shutdown()
    with pytest.raises(SendTaskError, match="shut down"):
        await stopped.kick(message(2))
