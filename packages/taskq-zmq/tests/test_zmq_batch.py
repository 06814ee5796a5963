"""Bulk sends through the ZeroMQ broker: one message per worker, split by credit, exactly once."""

from __future__ import annotations

import asyncio
import time

import pytest
import zmq
import zmq.asyncio
from hypothesis import given
from hypothesis import strategies as st

from taskq import BrokerMessage, TaskiqMessage
from taskq.exceptions import BatchSendError
from taskq.testing import eventually
from taskq_zmq import ZeroMQBroker, protocol
from taskq_zmq.dispatcher import PEER_TIMEOUT, Peer, Pending, split_by_credit


def message(n: int) -> BrokerMessage:
    return BrokerMessage(f"id-{n}", "zmq:test", b"%d" % n, {})


async def worker(address: str, prefetch: int = 256) -> ZeroMQBroker:
    broker = ZeroMQBroker(address, address, prefetch=prefetch)
    broker.is_worker_process = True
    await broker.startup()
    return broker


async def collect(broker: ZeroMQBroker, into: list[bytes]) -> None:
    async for payload in broker.listen():
        into.append(payload)


def buffered(broker: ZeroMQBroker) -> list[bytes]:
    assert broker._intake is not None
    return [payload for _, payload in broker._intake.buffer]


def count_messages(broker: ZeroMQBroker) -> list[int]:
    """Note the number of frames of each ZeroMQ message the worker receives from now on."""
    intake = broker._intake
    assert intake is not None
    sizes: list[int] = []
    on_message = intake.on_message

    def counting(frames: list[bytes]) -> bool:
        sizes.append(len(frames))
        return on_message(frames)

    intake.on_message = counting  # type: ignore[method-assign]
    return sizes


async def client_with_credit(address: str, credit: int) -> ZeroMQBroker:
    """A started client once its workers have reported ``credit`` in all."""
    client = ZeroMQBroker(address, address)
    await client.startup()
    dispatcher = client._dispatcher
    assert dispatcher is not None
    await eventually(
        lambda: sum(peer.credits for peer in dispatcher.peers.values()) == credit,
        30,
        what="told the workers' credit",
    )
    return client


async def test_a_batch_goes_as_one_message_per_worker_split_by_credit(address):
    first, second = await worker(address, prefetch=10), await worker(address, prefetch=10)
    client = await client_with_credit(address, 20)
    sizes = [count_messages(first), count_messages(second)]
    await client.kick_many([message(n) for n in range(15)])
    await eventually(
        lambda: len(buffered(first)) + len(buffered(second)) == 15, 30, what="all buffered"
    )
    got = [buffered(first), buffered(second)]
    assert sorted(len(g) for g in got) == [7, 8], "not split as one-by-one kicks would split it"
    assert sorted(int(p) for p in got[0] + got[1]) == list(range(15))
    assert sizes == [[1], [1]], "not one message per worker"

    # 5 more find room, the other 5 wait until the workers take some
    later = asyncio.create_task(client.kick_many([message(n) for n in range(15, 25)]))
    await eventually(
        lambda: len(buffered(first)) + len(buffered(second)) == 20, 30, what="room used"
    )
    assert not later.done()
    assert len(buffered(first)) == len(buffered(second)) == 10
    received: list[bytes] = []
    consumers = [asyncio.create_task(collect(w, received)) for w in (first, second)]
    await asyncio.wait_for(later, 30)
    await eventually(lambda: len(received) == 25, 30, what="all received")
    assert sorted(int(p) for p in received) == list(range(25))
    await client.shutdown()
    await first.shutdown()
    await second.shutdown()
    await asyncio.gather(*consumers)


async def test_a_batch_carries_each_message_and_its_labels_as_kick_does(address):
    target = await worker(address)
    client = await client_with_credit(address, 256)
    labels = [{}, {"timeout": 5}, {"retry_on_error": True, "tenant": "a"}]
    sent = [
        client.formatter.dumps(TaskiqMessage(f"id-{n}", "zmq:test", dict(lab), [n], {}))
        for n, lab in enumerate(labels)
    ]
    received: list[bytes] = []
    consumer = asyncio.create_task(collect(target, received))
    await client.kick_many(sent)
    await client.kick(sent[1])
    await eventually(lambda: len(received) == 4, 30, what="all received")
    assert received == [m.message for m in sent] + [sent[1].message]
    decoded = [target.formatter.loads(payload) for payload in received[:3]]
    assert [m.labels for m in decoded] == labels
    assert [m.task_id for m in decoded] == ["id-0", "id-1", "id-2"]
    await client.shutdown()
    await target.shutdown()
    await consumer


async def test_a_batch_cut_short_by_shutdown_says_which_messages_were_sent(address):
    target = await worker(address, prefetch=2)  # takes two, then has no room
    client = await client_with_credit(address, 2)
    batch = [message(n) for n in range(5)]
    sending = asyncio.create_task(client.kick_many(batch))
    await eventually(lambda: len(buffered(target)) == 2, 30, what="the first two buffered")
    assert (await client.inspect()).ready == 3
    await client.shutdown()
    with pytest.raises(BatchSendError) as failure:
        await sending
    assert failure.value.sent_ids == ("id-0", "id-1")
    assert failure.value.unsent_ids == ("id-2", "id-3", "id-4")
    assert buffered(target) == [b"0", b"1"]
    await target.shutdown()


async def test_a_batch_sent_by_a_task_goes_through_its_client_to_both_workers(address):
    first, second = await worker(address), await worker(address)
    client = await client_with_credit(address, 512)
    got_first: list[bytes] = []
    got_second: list[bytes] = []
    consumers = [
        asyncio.create_task(collect(first, got_first)),
        asyncio.create_task(collect(second, got_second)),
    ]
    for n in range(1000, 1020):  # the workers hear from the client first
        await client.kick(message(n))
    await eventually(lambda: bool(got_first) and bool(got_second), 30, what="both workers busy")
    await first.kick_many([message(n) for n in range(300)])  # as a running task would
    await eventually(lambda: len(got_first) + len(got_second) == 320, 30, what="all received")
    everything = sorted(int(p) for p in got_first + got_second)
    assert everything == list(range(300)) + list(range(1000, 1020))
    assert any(int(p) < 1000 for p in got_second)  # dispatched by the client, not kept
    await client.shutdown()
    await first.shutdown()
    await second.shutdown()
    await asyncio.gather(*consumers)


async def test_a_stopped_worker_fails_its_batch_with_nothing_sent(address):
    stopped = await worker(address)
    await stopped.shutdown()
    with pytest.raises(BatchSendError) as failure:
        await stopped.kick_many([message(1)])
    assert failure.value.unsent_ids == ("id-1",)


async def test_a_worker_hands_back_the_part_of_a_batch_beyond_its_credit(address, caplog):
    context = zmq.asyncio.Context()
    router = context.socket(zmq.ROUTER)
    router.bind(address)
    target = await worker(address, prefetch=3)
    identity, _ = await asyncio.wait_for(router.recv_multipart(), 10)
    session = b"s" * protocol.SESSION_SIZE
    await router.send_multipart([identity, b"t" + session])  # not a batch
    bad = protocol.tasks(session, 1, [b"a", b"b"])
    await router.send_multipart([identity, bad[:-1]])  # one byte short of what it says
    await router.send_multipart(
        [identity, protocol.tasks(session, 1, [b"%d" % n for n in range(5)])]
    )
    returned: list[bytes] = []
    while len(returned) < 2:
        _, frame = await asyncio.wait_for(router.recv_multipart(), 10)
        if frame[:1] == protocol.RETURN:
            returned.append(frame[1:])
    assert buffered(target) == [b"0", b"1", b"2"]
    assert returned == [b"3", b"4"]
    assert target._intake is not None
    assert target._intake.bad_frames.count == 4  # two malformed, two beyond the credit
    await target.shutdown()
    router.close(linger=0)
    context.term()


def one_by_one(credits: dict[bytes, int], count: int) -> dict[bytes, int]:
    """What `Dispatcher._pick` gives, one message at a time (the most credit; ties take turns)."""
    room, given = dict(credits), dict.fromkeys(credits, 0)
    for _ in range(count):
        best = max(room, key=lambda k: room[k], default=None)
        if best is None or room[best] <= 0:
            break
        room[best] -= 1
        given[best] += 1
        room[best] = room.pop(best)
    return given


@given(
    st.lists(st.integers(-3, 40), min_size=1, max_size=5),
    st.integers(1, 150),
)
def test_a_batch_is_split_about_as_one_by_one_sends_would_split_it(credits, count):
    workers = {b"w%d" % n: c for n, c in enumerate(credits)}
    shares = split_by_credit(workers, count)
    expected = one_by_one(workers, count)
    assert sum(shares.values()) == sum(expected.values())
    for key, credit in workers.items():  # equal but for whom ties give the last ones to
        assert 0 <= shares.get(key, 0) <= max(credit, 0)
        assert abs(shares.get(key, 0) - expected[key]) <= 1


async def test_a_kick_made_while_the_client_shuts_down_fails_and_the_shutdown_ends(address):
    client = ZeroMQBroker(address, address)
    await client.startup()
    closing = asyncio.create_task(client.shutdown())
    await asyncio.sleep(0)  # the shutdown has begun: its client side is closing
    with pytest.raises(BatchSendError) as failure:
        await client.kick_many([message(1)])
    assert failure.value.unsent_ids == ("id-1",)
    await asyncio.wait_for(closing, 30)


async def test_waiting_messages_are_each_given_once_beside_a_silent_worker(address):
    client = ZeroMQBroker(address, address)
    await client.startup()
    dispatcher = client._dispatcher
    assert dispatcher is not None
    dispatcher.flush = lambda: None  # type: ignore[method-assign]  # keep what it assigns
    now = time.monotonic()
    silent = Peer(credits=5, last_seen=now - 2 * PEER_TIMEOUT, assigned=[b"given before"])
    live = Peer(credits=3, last_seen=now)
    dispatcher.peers.update({b"silent": silent, b"live": live})
    waiting = Pending(4, 0, asyncio.get_running_loop().create_future())
    dispatcher.outbox.extend((b"w%d" % n, waiting) for n in range(4))
    dispatcher._drain()
    assert live.assigned == [b"w0", b"w1", b"w2"]
    assert [payload for payload, _ in dispatcher.outbox] == [b"w3"]
    assert waiting.sent == 3
    dispatcher._drop_silent()  # the silent worker's message goes back in front, once
    assert [payload for payload, _ in dispatcher.outbox] == [b"given before", b"w3"]
    dispatcher.peers.clear()
    await client.shutdown()
