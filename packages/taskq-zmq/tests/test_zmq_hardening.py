"""The ZeroMQ broker against hostile or broken peers, many clients, big buffers, killed workers."""

from __future__ import annotations

import asyncio
import struct

import pytest
import zmq
import zmq.asyncio

from taskq import BrokerMessage, SecurityError
from taskq.exceptions import ListenError, SendTaskError
from taskq.testing import eventually, free_port
from taskq_zmq import ZeroMQBroker, dispatcher, intake, protocol


def message(n: int) -> BrokerMessage:
    return BrokerMessage(f"id-{n}", "zmq:test", b"%d" % n, {})


async def receive_tasks(peer: zmq.asyncio.Socket, count: int) -> int:
    """Receive until ``count`` tasks came, each alone or in a batch; return how many came.

    Kicks made in one turn of the event loop leave as one batch, and whether awaited kicks
    share a turn depends on the Python (3.12's `asyncio.wait_for` no longer runs its coroutine
    in a task of its own), so a test counts tasks, not messages.
    """
    received = 0
    while received < count:
        frame = await asyncio.wait_for(peer.recv(), 5)
        batch = frame[:1] == protocol.TASKS
        received += len(protocol.parse_tasks(frame)[2]) if batch else 1
    return received


def free_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


async def worker(address: str, **options: object) -> ZeroMQBroker:
    broker = ZeroMQBroker(address, address, **options)  # type: ignore[arg-type]
    broker.is_worker_process = True
    await broker.startup()
    return broker


async def collect(broker: ZeroMQBroker, into: list[bytes]) -> None:
    async for payload in broker.listen():
        into.append(payload)


# 1. the trust boundary


def test_the_client_binds_loopback_by_default():
    assert ZeroMQBroker().zmq_pub_host == "tcp://127.0.0.1:5555"


@pytest.mark.parametrize("host", ["0.0.0.0", "*", "[::]", "192.0.2.1", "example.com"])
async def test_binding_a_public_address_without_curve_is_refused(host):
    client = ZeroMQBroker(f"tcp://{host}:5555", "tcp://127.0.0.1:5555")
    with pytest.raises(SecurityError, match=r"refusing to bind .* without CURVE"):
        await client.startup()
    await client.shutdown()


async def test_a_worker_that_binds_refuses_a_public_address_without_curve():
    broker = ZeroMQBroker("tcp://127.0.0.1:5555", "tcp://0.0.0.0:5555", bind="worker")
    broker.is_worker_process = True
    with pytest.raises(SecurityError, match="allow_unauthenticated=True"):
        await broker.startup()
    await broker.shutdown()


async def test_a_second_worker_binding_the_same_address_says_what_to_do(address):
    first = await worker(address, bind="worker")
    second = ZeroMQBroker(address, address, bind="worker")
    second.is_worker_process = True
    with pytest.raises(ListenError, match=r"Address already in use.*--workers 1"):
        await second.startup()
    await second.shutdown()
    await first.shutdown()


async def test_a_public_address_allowed_without_curve_warns_once(caplog):
    port = free_address().rsplit(":", 1)[1]
    client = ZeroMQBroker(
        f"tcp://0.0.0.0:{port}", f"tcp://127.0.0.1:{port}", allow_unauthenticated=True
    )
    await client.startup()
    await client.shutdown()
    warnings = [r for r in caplog.records if "read their arguments" in r.getMessage()]
    assert len(warnings) == 1
    assert "anyone who reaches it can run tasks" in warnings[0].getMessage()


async def test_loopback_binding_does_not_warn(address, caplog):
    client = ZeroMQBroker(address, address)
    await client.startup()
    await client.shutdown()
    assert "read their arguments" not in caplog.text


def test_a_bad_key_file_fails_at_construction(tmp_path):

    bad = tmp_path / "bad.key_secret"
    bad.write_text("not a certificate")
    with pytest.raises(SecurityError, match=r"bad\.key_secret"):
        ZeroMQBroker(curve_secret_key_file=bad)
    with pytest.raises(SecurityError, match="cannot read"):
        ZeroMQBroker(curve_secret_key_file=tmp_path / "missing.key_secret")


async def test_with_curve_an_unauthenticated_peer_takes_nothing_and_injects_nothing(
    tmp_path, address
):
    from taskq_zmq.security import create_keys  # here: the rest of the module runs without it

    allowed, outsiders = tmp_path / "allowed", tmp_path / "outsiders"
    _, client_secret = create_keys(tmp_path, "client")
    create_keys(allowed, "worker")
    _, stranger_secret = create_keys(outsiders, "stranger")
    worker_secret = allowed / "worker.key_secret"
    client = ZeroMQBroker(
        address,
        address,
        curve_secret_key_file=client_secret,
        curve_allowed_keys_dir=allowed,
    )
    await client.startup()
    context = zmq.asyncio.Context()
    intruders = []
    for curve_key in (None, stranger_secret):  # no CURVE at all; CURVE with an unknown key
        intruder = context.socket(zmq.DEALER)
        intruder.setsockopt(zmq.LINGER, 0)
        if curve_key is not None:
            public, secret = zmq.auth.load_certificate(curve_key)
            intruder.curve_publickey, intruder.curve_secretkey = public, secret
            intruder.curve_serverkey = zmq.auth.load_certificate(tmp_path / "client.key")[0]
        intruder.connect(address)
        intruders.append(intruder)
    for intruder in intruders:  # pose as a worker with room for everything; inject a task
        await intruder.send(protocol.credit(protocol.Credit(protocol.MAX_CREDIT, b"", 0)))
        await intruder.send(protocol.FORWARD + b"injected")
    genuine = await worker(
        address,
        curve_secret_key_file=worker_secret,
        curve_server_key_file=tmp_path / "client.key",
    )
    received: list[bytes] = []
    consumer = asyncio.create_task(collect(genuine, received))
    for n in range(200):
        await asyncio.wait_for(client.kick(message(n)), 10)
    await eventually(lambda: len(received) == 200)
    taken = 0
    for intruder in intruders:
        while await intruder.poll(100):
            await intruder.recv()
            taken += 1
    assert taken == 0
    assert b"injected" not in received
    assert sorted(int(p) for p in received) == list(range(200))
    await genuine.shutdown()
    await client.shutdown()
    await consumer
    for intruder in intruders:
        intruder.close()
    context.term()


async def test_a_peer_cannot_claim_more_credit_than_the_protocol_allows(address, caplog):
    client = ZeroMQBroker(address, address)
    await client.startup()
    context = zmq.asyncio.Context()
    greedy = context.socket(zmq.DEALER)
    greedy.setsockopt(zmq.LINGER, 0)
    greedy.connect(address)
    huge = struct.pack("!cI16sQI", b"C", 2**32 - 1, b"\0" * 16, 0, 0)
    for _ in range(50):
        await greedy.send(huge)
    await greedy.send(b"\xff garbage")
    dispatcher = client._dispatcher
    assert dispatcher is not None
    await eventually(lambda: dispatcher.bad_frames.count == 51, what="the client read all 51")
    pending = asyncio.create_task(client.kick(message(1)))
    assert not await greedy.poll(300), "the client sent a task on absurd credit"
    assert not pending.done()
    lines = [r for r in caplog.records if "does not fit the protocol" in r.getMessage()]
    assert len(lines) == 1  # once for that peer, however many frames
    honest = await worker(address)
    received: list[bytes] = []
    consumer = asyncio.create_task(collect(honest, received))
    await asyncio.wait_for(pending, 10)
    await eventually(lambda: received == [b"1"])
    await honest.shutdown()
    await client.shutdown()
    await consumer
    greedy.close()
    context.term()


# 2. several clients when the workers bind


@pytest.mark.parametrize("workers", [1, 2])
async def test_three_clients_and_binding_workers_complete_every_task_once(workers):
    addresses = [free_address() for _ in range(workers)]
    hosts = []
    received: list[bytes] = []
    consumers = []
    for address in addresses:
        host = await worker(address, bind="worker")
        hosts.append(host)
        consumers.append(asyncio.create_task(collect(host, received)))
    joined = ",".join(addresses)
    clients = [ZeroMQBroker(joined, joined, bind="worker") for _ in range(3)]

    async def send_all(client: ZeroMQBroker, first: int) -> None:
        await client.startup()
        for n in range(first, first + 3000):
            await client.kick(message(n))

    await asyncio.wait_for(
        asyncio.gather(*(send_all(c, i * 3000) for i, c in enumerate(clients))), 60
    )
    await eventually(lambda: len(received) >= 9000, 30)
    for client in clients:
        await client.shutdown()
    for host in hosts:
        await host.shutdown()
    await asyncio.gather(*consumers)
    assert sorted(int(p) for p in received) == list(range(9000))


# 3. a worker sent more than its credit


async def test_a_worker_hands_back_tasks_beyond_its_credit_and_lives(address, caplog):
    context = zmq.asyncio.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(address)
    target = await worker(address, prefetch=16)
    identity, _ = await asyncio.wait_for(router.recv_multipart(), 5)
    for n in range(40):
        await router.send_multipart([identity, protocol.task(b"s" * 16, n + 1, b"%d" % n)])
    returned = []
    while len(returned) < 24:
        _, frame = await asyncio.wait_for(router.recv_multipart(), 5)
        if frame[:1] == protocol.RETURN:
            returned.append(frame[1:])
    assert len(target._intake.buffer) == 16  # type: ignore[union-attr]
    received: list[bytes] = []
    consumer = asyncio.create_task(collect(target, received))
    await eventually(lambda: len(received) == 16)
    assert sorted(int(p) for p in received + returned) == list(range(40))
    assert caplog.text.count("beyond the credit") == 1
    await target.shutdown()
    await consumer
    router.close()
    context.term()


# 4. a graceful stop hands back everything


async def test_a_graceful_stop_hands_back_everything_at_prefetch_5000(address, caplog):
    client = ZeroMQBroker(address, address)
    await client.startup()
    leaving = await worker(address, prefetch=5000)
    for n in range(5000):
        await asyncio.wait_for(client.kick(message(n)), 10)
    await eventually(lambda: len(leaving._intake.buffer) == 5000)  # type: ignore[union-attr]
    await leaving.shutdown()
    staying = await worker(address)
    received: list[bytes] = []
    consumer = asyncio.create_task(collect(staying, received))
    await eventually(lambda: len(received) >= 5000, 30)
    assert sorted(int(p) for p in received) == list(range(5000))
    assert "could not be handed back" not in caplog.text
    await staying.shutdown()
    await client.shutdown()
    await consumer


async def test_a_hand_back_that_cannot_happen_says_why(address, caplog):
    host = await worker(address, bind="worker", prefetch=50)
    client = ZeroMQBroker(address, address, bind="worker")
    await client.startup()
    for n in range(5):
        await asyncio.wait_for(client.kick(message(n)), 10)
    await eventually(lambda: len(host._intake.buffer) == 5)  # type: ignore[union-attr]
    await client.shutdown()  # the only client leaves before the worker stops
    await eventually(lambda: not host._intake.clients)  # type: ignore[union-attr]
    await host.shutdown()
    assert "5 of 5 buffered messages could not be handed back: no client is connected" in (
        caplog.text
    )


async def test_a_client_stopping_with_handed_back_messages_logs_their_loss_once(address, caplog):
    client = ZeroMQBroker(address, address)
    await client.startup()
    context = zmq.asyncio.Context()
    leaving = context.socket(zmq.DEALER)
    leaving.setsockopt(zmq.LINGER, 0)
    leaving.connect(address)
    for n in range(300):  # a worker hands back its buffer; no worker has room for it
        await leaving.send(protocol.RETURN + b"%d" % n)
    await eventually(lambda: len(client._dispatcher.outbox) == 300)  # type: ignore[union-attr]
    await client.shutdown()
    lines = [r.getMessage() for r in caplog.records if "Shutdown dropped" in r.getMessage()]
    assert lines == [
        "Shutdown dropped 300 messages workers had handed back or sent (790 bytes): they are lost"
    ]
    leaving.close()
    context.term()


# 5. a killed worker's loss is logged


async def test_a_vanished_worker_s_unstarted_messages_are_logged_once(address, caplog, monkeypatch):
    monkeypatch.setattr(dispatcher, "PEER_TIMEOUT", 0.5)
    monkeypatch.setattr(dispatcher, "HEARTBEAT", 0.1)
    client = ZeroMQBroker(address, address)
    await client.startup()
    context = zmq.asyncio.Context()
    doomed = context.socket(zmq.DEALER)
    doomed.setsockopt(zmq.LINGER, 0)
    doomed.connect(address)
    await doomed.send(protocol.credit(protocol.Credit(10, b"", 0)))
    for n in range(7):
        await asyncio.wait_for(client.kick(message(n)), 5)
    assert await receive_tasks(doomed, 7) == 7
    doomed.close()  # killed: it reports nothing more
    await eventually(lambda: "lost" in caplog.text, 5)
    await asyncio.sleep(0.3)  # several watch rounds: still one line
    lines = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert len(lines) == 1
    assert "holding 7 messages" in lines[0]
    await client.shutdown()
    context.term()


def test_prefetch_is_bounded_by_the_protocol():
    with pytest.raises(ValueError, match="65535"):
        ZeroMQBroker(prefetch=protocol.MAX_CREDIT + 1)
    assert ZeroMQBroker(prefetch=protocol.MAX_CREDIT).prefetch == 65_535


# 5. an operator's mistakes, and a worker's reports under load


async def test_a_client_that_cannot_bind_its_address_says_why(address):
    holder = ZeroMQBroker(address, address)
    await holder.startup()
    client = ZeroMQBroker(address, address)
    try:
        with pytest.raises(SendTaskError, match=r"cannot bind .*already in use.*another process"):
            await client.startup()
        with pytest.raises(SendTaskError, match="cannot bind"):  # so does a kick, later
            await client.kick(message(1))
    finally:
        await client.shutdown()
        await holder.shutdown()


async def test_a_worker_reports_room_when_a_quarter_of_its_buffer_frees_up(address, monkeypatch):
    monkeypatch.setattr(intake, "HEARTBEAT", 60.0)  # no heartbeat report during the test
    context = zmq.asyncio.Context()
    client = context.socket(zmq.ROUTER)
    client.setsockopt(zmq.LINGER, 0)
    client.bind(address)
    busy = await worker(address, prefetch=8)
    session = b"s" * protocol.SESSION_SIZE
    try:
        identity, frame = await asyncio.wait_for(client.recv_multipart(), 5)
        assert protocol.parse_credit(frame).free == 8
        payloads = [b"%d" % n for n in range(8)]
        await client.send_multipart([identity, protocol.tasks(session, 1, payloads)])
        received = busy.listen()
        taken = [await anext(received) for _ in range(2)]  # a quarter of the buffer frees up
        assert taken == [b"0", b"1"]
        _, frame = await asyncio.wait_for(client.recv_multipart(), 5)
        report = protocol.parse_credit(frame)
        assert (report.free, report.last_seq, report.held) == (2, 8, 6)
    finally:
        await busy.shutdown()
        client.close()
        context.term()
