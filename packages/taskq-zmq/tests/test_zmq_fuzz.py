"""Property-based tests of both sides' frame decoding: arbitrary frames never stop a process.

Each example drives the decoding functions directly (no socket round trip), with valid messages
interleaved among arbitrary and deliberately malformed ones: every valid task is buffered (worker)
or dispatched (client) exactly once, every malformed frame is counted, and the log has one line
per misbehaving peer. ``TASKQ_FUZZ_EXAMPLES`` sets the number of examples (default 3,000).
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import Iterator

import pytest
import zmq
import zmq.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskq import BrokerMessage
from taskq.testing import free_port
from taskq_zmq import ZeroMQBroker, protocol
from taskq_zmq.badframes import BadFrames
from taskq_zmq.dispatcher import Dispatcher
from taskq_zmq.intake import Intake
from taskq_zmq.lifetime import OwnContext

FUZZ = settings(
    max_examples=int(os.environ.get("TASKQ_FUZZ_EXAMPLES", "3000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
#: Seconds a fuzz test may take: 10,000 examples run for about a minute on a loaded machine.
FUZZ_TIMEOUT_S = 600
SESSION = b"s" * protocol.SESSION_SIZE
PEERS = [b"peer-a", b"peer-b", b"peer-c"]


def free_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def client(loop, context) -> Iterator[Dispatcher]:
    client = loop.run_until_complete(_dispatcher(context))
    yield client
    loop.run_until_complete(client.close())


@pytest.fixture(scope="module")
def intakes(loop, context) -> Iterator[dict[bool, Intake]]:
    intakes = {
        routed: loop.run_until_complete(_intake(context, routed)) for routed in (False, True)
    }
    yield intakes
    for intake in intakes.values():
        intake.closed = True
        intake._loop.remove_reader(intake.socket.FD)
        for task in intake._tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*intake._tasks, return_exceptions=True))
        intake.socket.close(linger=0)


@pytest.fixture(scope="module")
def context() -> Iterator[OwnContext]:
    context = OwnContext()
    yield context
    context.close()


# Frames that are never a valid message, whoever receives them (built, not filtered: cheap).
_OTHER_KINDS = [bytes([k]) for k in range(256) if bytes([k]) not in b"TCRFBHtf"]
_BATCHES = [  # batches of tasks or messages whose lengths do not add up
    protocol.tasks(b"s" * protocol.SESSION_SIZE, 1, [b"a", b"bc"])[:-1],
    protocol.tasks(b"s" * protocol.SESSION_SIZE, 1, [b"a", b"bc"]) + b"d",
    protocol.forwards([b"a", b"bc"])[:-1],
    protocol.forwards([b"a"]) + b"d",
]
_tail = st.binary(max_size=16)
never_valid = st.one_of(
    st.just(b""),
    st.tuples(st.sampled_from(_OTHER_KINDS), _tail).map(b"".join),  # an unknown kind
    st.binary(max_size=protocol.SESSION_SIZE + 7).map(lambda f: b"T" + f),  # a short task
    st.binary(min_size=1, max_size=8).map(lambda f: b"B" + f),  # BYE with a tail
    st.binary(max_size=31).map(lambda f: b"C" + f),  # a credit report cut short
    st.integers(protocol.MAX_CREDIT + 1, 2**32 - 1).map(  # credit beyond the protocol's limit
        lambda free: struct.pack("!cI16sQI", b"C", free, b"\0" * 16, 0, 0)
    ),
    st.binary(max_size=15).map(lambda f: b"H" + f),  # a greeting cut short
    st.binary(max_size=protocol.SESSION_SIZE + 11).map(lambda f: b"t" + f),  # batch, short
    st.binary(max_size=3).map(lambda f: b"f" + f),  # a batch of messages cut short
    st.sampled_from(_BATCHES),
)


def client_side_junk() -> st.SearchStrategy[list[bytes]]:
    """Multipart messages a client must reject, as a ROUTER receives them (peer id first)."""
    bad_kind = never_valid  # a TASK or a HELLO is a worker's message: bad here too
    return st.one_of(
        st.tuples(st.sampled_from(PEERS), bad_kind).map(list),
        st.tuples(st.sampled_from(PEERS), st.just(b"T" + SESSION + b"\0" * 8)).map(list),
        st.tuples(st.sampled_from(PEERS), st.binary(), st.binary()).map(list),  # 3 frames
        st.sampled_from(PEERS).map(lambda peer: [peer]),  # no frame after the id
    )


@pytest.mark.timeout(FUZZ_TIMEOUT_S)
@FUZZ
@given(
    st.lists(
        st.one_of(
            client_side_junk().map(lambda m: ("junk", m)),
            st.lists(st.binary(max_size=24), min_size=1, max_size=3).map(lambda m: ("any", m)),
            st.just(("valid", [])),
        ),
        max_size=16,
    )
)
def test_the_client_survives_any_frames_and_dispatches_each_valid_one_once(
    client, caplog, messages
):
    client.outbox.clear()
    client.peers.clear()
    client.bad_frames = BadFrames("client")
    caplog.clear()
    forwarded: list[bytes] = []
    junk_peers: set[bytes] = set()
    junk = 0
    for n, (kind, frames) in enumerate(messages):
        if kind == "valid":
            payload = b"valid-%d" % n
            forwarded.append(payload)
            frames = [PEERS[n % 3], protocol.FORWARD + payload]
        elif kind == "junk":
            junk += 1
            junk_peers.add(frames[0])
        client.on_message(frames)
    assert client.bad_frames.count >= junk
    outbox = [payload for payload, _ in client.outbox]
    for payload in forwarded:
        assert outbox.count(payload) == 1
    warned = [r for r in caplog.records if "does not fit the protocol" in r.getMessage()]
    senders = {frames[0] if frames else b"" for kind, frames in messages if kind != "valid"}
    assert len(warned) <= len(senders)  # once per peer at most
    assert len(warned) >= len(junk_peers)


async def _dispatcher(context: OwnContext) -> Dispatcher:
    return Dispatcher(context, free_address(), bind=True)


def worker_side_junk(routed: bool) -> st.SearchStrategy[list[bytes]]:
    """Multipart messages a worker must reject (with the client's id first when it binds)."""
    if not routed:
        return st.one_of(
            never_valid.map(lambda f: [f]),
            st.sampled_from([protocol.BYE, protocol.hello(SESSION)]).map(lambda f: [f]),
            st.lists(st.binary(), min_size=2, max_size=3),
            st.just([]),
        )
    return st.one_of(
        st.tuples(st.sampled_from(PEERS), never_valid).map(list),
        st.tuples(st.sampled_from(PEERS), st.binary(), st.binary()).map(list),
        st.sampled_from(PEERS).map(lambda peer: [peer]),
    )


def worker_messages(routed: bool) -> st.SearchStrategy[tuple[bool, list[tuple[str, list[bytes]]]]]:
    kinds = st.one_of(
        worker_side_junk(routed).map(lambda m: ("junk", m)),
        st.lists(st.binary(max_size=24), min_size=1, max_size=3).map(lambda m: ("any", m)),
        st.just(("valid", [])),
    )
    return st.tuples(st.just(routed), st.lists(kinds, max_size=16))


@pytest.mark.timeout(FUZZ_TIMEOUT_S)
@FUZZ
@given(st.one_of(worker_messages(False), worker_messages(True)))
def test_a_worker_survives_any_frames_and_buffers_each_valid_task_once(intakes, caplog, drawn):
    routed, messages = drawn
    intake = intakes[routed]
    intake.buffer.clear()
    intake.clients.clear()
    intake.bad_frames = BadFrames("worker")
    sent: list[tuple[bytes, bytes]] = []
    intake._send_now = lambda key, frame: sent.append((key, frame))  # type: ignore[method-assign]
    caplog.clear()
    seqs = dict.fromkeys(PEERS, 0)
    if routed:
        for peer in PEERS:  # greeted: each has credit
            intake.on_message([peer, protocol.hello(SESSION)])
    valid: list[bytes] = []
    junk = 0
    for n, (kind, frames) in enumerate(messages):
        if kind == "valid":
            peer = PEERS[n % 3]
            seqs[peer] += 1
            payload = b"valid-%d" % n
            valid.append(payload)
            task = protocol.task(SESSION, seqs[peer], payload)
            frames = [peer, task] if routed else [task]
        elif kind == "junk":
            junk += 1
        intake.on_message(frames)
    assert intake.bad_frames.count >= junk
    buffered = [payload for _, payload in intake.buffer]
    returned = [frame[1:] for _, frame in sent if frame[:1] == protocol.RETURN]
    for payload in valid:
        assert buffered.count(payload) + returned.count(payload) == 1
    assert len(intake.buffer) <= intake.prefetch * (2 if routed else 1)
    warned = [r for r in caplog.records if "does not fit the protocol" in r.getMessage()]
    senders = {
        (frames[0] if frames else b"") if routed else b""
        for kind, frames in messages
        if kind != "valid"
    }
    assert len(warned) <= len(senders | set(PEERS))  # once per peer at most
    assert bool(warned) == bool(intake.bad_frames.count)


async def _intake(context: OwnContext, routed: bool) -> Intake:
    return Intake(context, free_address(), bind=routed, prefetch=16)


async def test_hundreds_of_garbage_frames_through_real_sockets_stop_neither_side(caplog):
    """A client takes 300 garbage frames from a hostile peer, then works as before."""
    caplog.set_level(logging.WARNING)
    address = free_address()
    rng = __import__("random").Random(7)
    garbage = [rng.randbytes(rng.randrange(0, 80)) for _ in range(300)]
    client = ZeroMQBroker(address, address)
    await client.startup()
    hostile = zmq.asyncio.Context()
    fake_worker = hostile.socket(zmq.DEALER)
    fake_worker.setsockopt(zmq.LINGER, 0)
    fake_worker.connect(address)
    for frame in garbage:
        if frame[:1] not in (protocol.RETURN, protocol.FORWARD):  # those are valid messages
            await fake_worker.send(frame)
    worker = ZeroMQBroker(address, address)
    worker.is_worker_process = True
    await worker.startup()
    received: list[bytes] = []

    async def consume() -> None:
        async for payload in worker.listen():
            received.append(payload)

    consumer = asyncio.create_task(consume())
    for n in range(50):
        await asyncio.wait_for(client.kick(_message(n)), 10)
    for _ in range(500):  # wait for the condition, at most 10 s
        if len(received) >= 50:
            break
        await asyncio.sleep(0.02)
    assert sorted(int(p) for p in received) == list(range(50))
    assert client._dispatcher is not None
    assert client._dispatcher.bad_frames.count > 0
    await worker.shutdown()
    await client.shutdown()
    await consumer
    fake_worker.close()
    hostile.term()


def _message(n: int) -> BrokerMessage:
    return BrokerMessage(f"id-{n}", "zmq:test", b"%d" % n, {})
