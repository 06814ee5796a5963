"""A worker that stops while tasks are on their way to it: each reaches another worker, once."""

from __future__ import annotations

import asyncio

import pytest
import zmq
import zmq.asyncio

from taskq import BrokerMessage
from taskq.testing import eventually
from taskq_zmq import ZeroMQBroker, protocol
from taskq_zmq.dispatcher import Dispatcher
from taskq_zmq.lifetime import OwnContext
from taskq_zmq.peer_watch import PeerWatch


def message(n: int) -> BrokerMessage:
    return BrokerMessage(f"id-{n}", "zmq:test", b"%d" % n, {})


async def worker(address: str, prefetch: int = 16) -> ZeroMQBroker:
    broker = ZeroMQBroker(address, address, prefetch=prefetch)
    broker.is_worker_process = True
    await broker.startup()
    return broker


async def client(address: str) -> tuple[ZeroMQBroker, Dispatcher]:
    broker = ZeroMQBroker(address, address)
    await broker.startup()
    assert broker._dispatcher is not None
    return broker, broker._dispatcher


async def collect(broker: ZeroMQBroker, into: list[bytes]) -> None:
    async for payload in broker.listen():
        into.append(payload)


def numbers(payloads: list[bytes]) -> list[int]:
    return sorted(int(payload) for payload in payloads)


async def test_a_batch_on_its_way_to_a_worker_that_stops_reaches_the_other_one(address):
    leaving, staying = await worker(address), await worker(address)
    sender, dispatcher = await client(address)
    await eventually(lambda: sum(peer.credits for peer in dispatcher.peers.values()) == 32)
    received: list[bytes] = []
    consumer = asyncio.create_task(collect(staying, received))
    await sender.kick_many([message(n) for n in range(20)])  # split between the two
    await leaving.shutdown()  # leaves right after the batch left, before reading all of it
    await eventually(lambda: len(received) == 20)
    assert numbers(received) == list(range(20))
    assert not dispatcher.outbox
    await staying.shutdown()
    await sender.shutdown()
    await consumer


async def test_a_stopping_worker_hands_back_the_tasks_waiting_unread_in_its_socket(address):
    context = zmq.asyncio.Context()
    fake_client = context.socket(zmq.ROUTER)
    fake_client.setsockopt(zmq.LINGER, 0)
    fake_client.bind(address)
    target = await worker(address)
    intake = target._intake
    assert intake is not None
    identity, _ = await asyncio.wait_for(fake_client.recv_multipart(), 10)
    intake._loop.remove_reader(intake.socket.FD)  # its loop has not got round to reading
    session = b"s" * protocol.SESSION_SIZE
    batch = protocol.tasks(session, 1, [b"%d" % n for n in range(5)])
    await fake_client.send_multipart([identity, batch])
    await eventually(lambda: bool(intake.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN))
    await target.shutdown()
    frames = []
    while len(frames) < 6:
        _, frame = await asyncio.wait_for(fake_client.recv_multipart(), 10)
        if frame[:1] != protocol.CREDIT:
            frames.append(frame)
    assert protocol.parse_goodbye(frames[0]) == (session, 5)
    assert frames[1:] == [protocol.RETURN + b"%d" % n for n in range(5)]
    fake_client.close()
    context.term()


@pytest.mark.parametrize(
    ("ours", "last_seq", "handed_back", "expected"),
    [
        (True, 2, [0], [0, 2, 3, 4, 5]),  # took 1 and 2, ran 2, hands back 1
        (True, 6, [], []),  # took all, ran all
        (False, 0, [], [0, 1, 2, 3, 4, 5]),  # took none of this client's tasks
    ],
)
async def test_the_tasks_a_leaving_worker_never_received_go_to_another_worker(
    address, ours, last_seq, handed_back, expected
):
    sender, dispatcher = await client(address)
    context = zmq.asyncio.Context()
    leaving = context.socket(zmq.DEALER)
    leaving.setsockopt(zmq.LINGER, 1000)
    leaving.connect(address)
    await leaving.send(protocol.credit(protocol.Credit(10, b"", 0)))
    await eventually(lambda: dispatcher.live_workers() == 1)
    await sender.kick_many([message(n) for n in range(6)])
    session, first, payloads = protocol.parse_tasks(await asyncio.wait_for(leaving.recv(), 10))
    assert (first, numbers(payloads)) == (1, list(range(6)))
    goodbye = protocol.goodbye(session if ours else b"another session", last_seq)
    for frame in [goodbye] + [protocol.RETURN + payloads[n] for n in handed_back]:
        await leaving.send(frame)
    leaving.close()
    staying = await worker(address)
    received: list[bytes] = []
    consumer = asyncio.create_task(collect(staying, received))
    await eventually(lambda: len(received) == len(expected) and not dispatcher.outbox)
    await sender.kick(message(99))  # behind any message sent twice
    await eventually(lambda: b"99" in received)
    assert numbers(received) == [*expected, 99]
    await staying.shutdown()
    await sender.shutdown()
    await consumer
    context.term()


async def test_tasks_sent_to_a_worker_gone_before_its_goodbye_is_read_are_not_lost(address):
    sender, dispatcher = await client(address)
    context = zmq.asyncio.Context()
    leaving = context.socket(zmq.DEALER)
    leaving.connect(address)
    await leaving.send(protocol.credit(protocol.Credit(10, b"", 0)))
    await eventually(lambda: dispatcher.live_workers() == 1)
    monitor = dispatcher.socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    await sender.kick_many([message(n) for n in range(3)])
    session, _, _ = protocol.parse_tasks(await asyncio.wait_for(leaving.recv(), 10))
    dispatcher._loop.remove_reader(dispatcher.socket.FD)  # the client is busy: reads nothing
    await leaving.send(protocol.goodbye(session, 0))  # it read none of them after all
    leaving.close(linger=1000)
    await asyncio.wait_for(asyncio.to_thread(monitor.recv_multipart), 10)
    await sender.kick_many([message(n) for n in range(3, 6)])  # its credit left room for them
    await asyncio.sleep(0)  # they leave: the socket refuses them (the worker is gone)
    dispatcher._loop.add_reader(dispatcher.socket.FD, dispatcher._poll)
    staying = await worker(address)
    received: list[bytes] = []
    consumer = asyncio.create_task(collect(staying, received))
    await eventually(lambda: len(received) == 6)
    assert numbers(received) == list(range(6))
    dispatcher.socket.disable_monitor()
    monitor.close()
    await staying.shutdown()
    await sender.shutdown()
    await consumer
    context.term()


async def test_a_worker_that_never_had_a_client_stops_without_waiting_for_one(address):
    # its goodbye used to wait out the socket's 2 s linger for a client that never came
    leaving = await worker(address)
    loop = asyncio.get_running_loop()

    started = loop.time()
    await leaving.shutdown()

    assert loop.time() - started < 1.0


async def test_a_worker_whose_client_is_connected_still_says_goodbye(address):
    leaving = await worker(address)
    sender, dispatcher = await client(address)
    await eventually(lambda: len(dispatcher.peers) == 1)
    assert leaving._intake is not None
    assert leaving._intake._client_link is not None
    link = leaving._intake._client_link
    await eventually(lambda: link.peers == 1)  # so its goodbye may linger until it is sent
    goodbyes: list[int] = []
    on_goodbye = dispatcher._on_goodbye

    def heard(identity: bytes, session: bytes, last_seq: int) -> None:
        goodbyes.append(last_seq)
        on_goodbye(identity, session, last_seq)

    dispatcher._on_goodbye = heard  # type: ignore[method-assign]

    await leaving.shutdown()

    await eventually(lambda: goodbyes == [0])
    await sender.shutdown()


async def test_the_peer_watch_counts_a_client_that_comes_and_goes(address):
    context = OwnContext()
    router = context.socket(zmq.ROUTER)
    router.bind(address)
    dealer = context.socket(zmq.DEALER)
    watch = PeerWatch(context, dealer)
    try:
        assert watch.peers == 0
        dealer.connect(address)
        await eventually(lambda: watch.peers == 1)
        router.close(linger=0)
        await eventually(lambda: watch.peers == 0)
    finally:
        watch.close()
        dealer.close(linger=0)
        context.close()
