"""AmqpBroker against the real RabbitMQ: dead letters, poison messages, delay, priority."""

from __future__ import annotations

import asyncio
import math
import time
import urllib.parse
from typing import Any

import pytest

from taskq import Capability, Receiver, UnsupportedCapabilityError
from taskq.abc.dead_letters import DeadLetterQueue as DeadLetterContract
from taskq.exceptions import InvalidLabelError
from taskq.testing import eventually
from taskq_amqp import AmqpBroker, AmqpUnavailableError, SendUnavailableError, UnroutableError
from taskq_amqp.queues import bucket_ms

from .conftest import message


async def take(broker: AmqpBroker, count: int, timeout: float = 30) -> list[Any]:
    got: list[Any] = []

    async def collect() -> None:
        async for item in broker.listen():
            got.append(item)
            if len(got) == count:
                return

    await asyncio.wait_for(collect(), timeout)
    return got


def test_capabilities_follow_the_configuration():
    plain = AmqpBroker()
    assert Capability.DELAY in plain.capabilities
    assert Capability.PRIORITY not in plain.capabilities
    assert Capability.PRIORITY in AmqpBroker(max_priority=5).capabilities
    assert Capability.PRIORITY not in AmqpBroker(queue_type="quorum").capabilities


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"url": "redis://localhost"}, "not an AMQP URL"),
        ({"queue_type": "quorum", "max_priority": 5}, "quorum queues have no priorities"),
        ({"max_priority": 0}, "max_priority must be an integer from 1 to 255"),
        ({"max_deliveries": 0}, "max_deliveries must be an integer of at least 1"),
        ({"queue_type": "stream"}, "queue_type must be"),
        ({"send_timeout_s": 0}, "send_timeout_s must be a finite number of seconds greater than 0"),
        ({"queue_name": ""}, "queue_name must be"),
    ],
)
def test_bad_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        AmqpBroker(**options)


def test_delays_keep_three_significant_digits():
    assert bucket_ms(0.0001) == 1
    assert bucket_ms(0.25) == 250
    assert bucket_ms(1.234) == 1230
    assert bucket_ms(3600) == 3_600_000
    assert bucket_ms(3661.5) == 3_660_000


async def test_a_priority_label_is_refused_without_max_priority(new_broker):
    broker = await new_broker(worker=False)

    @broker.task(task_name="amqp:job")
    async def job() -> None: ...

    with pytest.raises(UnsupportedCapabilityError):
        await job.kicker().with_labels(priority=3).kiq()
    with pytest.raises(InvalidLabelError):
        await broker.kick(message(b"x", delay="soon"))


async def test_reject_dead_letters_with_the_reason(new_broker):
    broker = await new_broker()
    await broker.kick(message(b"bad input"))
    (item,) = await take(broker, 1)
    await item.reject("ValueError: bad input")
    dead = broker.dead_letters
    assert isinstance(dead, DeadLetterContract)
    assert dead.where == f"{broker.queue_name}.dead-letters"
    assert await dead.count() == 1
    (letter,) = await dead.list()
    assert letter.payload == b"bad input"
    assert letter.reason == "ValueError: bad input"
    assert letter.deliveries == 1
    assert letter.dead_at is not None
    assert abs(letter.dead_at.timestamp() - time.time()) < 60


async def test_reject_after_the_dead_letter_queue_was_deleted_declares_it_again(new_broker):
    """Otherwise the message stays held by the worker, unsettled, until it stops."""
    broker = await new_broker()
    await broker.kick(message(b"bad input"))
    (item,) = await take(broker, 1)
    channel = await broker.connection.channel()
    await channel.queue_delete(broker.queues.dead_letter_queue)  # an operator empties it
    await channel.close()
    await item.reject("ValueError: bad input")
    (letter,) = await broker.dead_letters.list()
    assert letter.reason == "ValueError: bad input"


async def test_dead_letters_list_show_replay_and_purge(new_broker):
    broker = await new_broker()
    for data in (b"a", b"b", b"c"):
        await broker.kick(message(data))
    for item in await take(broker, 3):
        await item.reject()
    dead = broker.dead_letters
    letters = await dead.list()
    assert [letter.payload for letter in letters] == [b"a", b"b", b"c"]
    assert [letter.reason for letter in letters] == ["rejected (no reason given)"] * 3
    assert [x.payload for x in await dead.list(count=1, after=letters[0].id)] == [b"b"]
    shown = await dead.show(letters[1].id)
    assert shown is not None
    assert shown.payload == b"b"
    assert await dead.show("no-such-id") is None
    assert [x.payload for x in await dead.list()] == [b"a", b"b", b"c"], "reading moved them"
    assert await dead.list(count=0) == []
    assert await dead.list(count=-1) == []

    assert await dead.replay([letters[0].id]) == 1
    assert await dead.replay([letters[0].id]) == 0, "replayed twice"
    (again,) = await take(broker, 1)
    assert again.data == b"a"
    await again.ack()
    assert await dead.purge([letters[1].id]) == 1
    assert [x.payload for x in await dead.list()] == [b"c"]
    assert await dead.purge() == 1
    assert await dead.count() == 0


async def test_replay_all_sends_every_dead_letter_back(new_broker):
    broker = await new_broker()
    for n in range(5):
        await broker.kick(message(b"%d" % n))
    for item in await take(broker, 5):
        await item.reject("later")
    assert await broker.dead_letters.replay() == 5
    items = await take(broker, 5)
    assert sorted(item.data for item in items) == [b"%d" % n for n in range(5)]
    for item in items:
        await item.ack()
    assert await broker.dead_letters.count() == 0


async def test_release_returns_the_message_and_counts_the_delivery(new_broker):
    broker = await new_broker(max_deliveries=2)
    await broker.kick(message(b"again"))
    (first,) = await take(broker, 1)
    await first.release()
    (second,) = await take(broker, 1)
    assert second.data == b"again"
    await second.release()  # its second delivery: the limit
    with pytest.raises(asyncio.TimeoutError):  # the next consumer dead-letters it instead
        await take(broker, 1, timeout=2)
    (letter,) = await broker.dead_letters.list()
    assert letter.reason == "delivered 2 times without an acknowledgement (max_deliveries)"
    assert letter.deliveries == 2


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
async def test_a_poison_message_ends_in_the_dead_letters(new_broker, queue_type):
    """A message whose consumer goes away every time is dead-lettered after max_deliveries."""
    limit = 3
    await (await new_broker(queue_type=queue_type, max_deliveries=limit)).kick(message(b"poison"))
    for _ in range(limit):
        consumer = await new_broker(queue_type=queue_type, max_deliveries=limit)
        (item,) = await take(consumer, 1)
        assert item.data == b"poison"
        await consumer.shutdown()  # as a worker killed by the task: never settled
    broker = await new_broker(queue_type=queue_type, max_deliveries=limit)
    with pytest.raises(asyncio.TimeoutError):  # not delivered a fourth time
        await take(broker, 1, timeout=2)
    (letter,) = await broker.dead_letters.list()
    assert letter.payload == b"poison"
    assert "times without an acknowledgement" in letter.reason
    assert letter.deliveries == limit


async def test_delay_holds_the_message_in_a_bucket_until_due(new_broker):
    broker = await new_broker()
    sent_at = time.monotonic()
    await broker.kick(message(b"later", delay=1.5))
    await broker.kick(message(b"now"))
    first, second = await take(broker, 2)
    assert first.data == b"now"
    assert second.data == b"later"
    assert time.monotonic() - sent_at >= 1.4
    assert f"{broker.queue_name}.delay.1500" in broker.queue_names()
    await first.ack()
    await second.ack()


async def test_priority_orders_a_backlog_and_survives_a_delay(new_broker):
    broker = await new_broker(max_priority=5)
    for n, priority in enumerate([1, 5, 3, 9]):  # 9 counts as 5
        await broker.kick(message(b"%d" % n, priority=priority))
    items = await take(broker, 4)
    assert [item.data for item in items] == [b"1", b"3", b"2", b"0"]
    for item in items:
        await item.ack()


async def test_a_kick_without_rabbitmq_raises_after_send_timeout():
    broker = AmqpBroker("amqp://guest:guest@127.0.0.1:1/", send_timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(SendUnavailableError, match=r"did not answer for 0\.3 s"):
        await broker.kick(message(b"x"))
    with pytest.raises(AmqpUnavailableError):
        await broker.startup()
    assert time.monotonic() - started < 30
    await broker.shutdown()


async def test_a_vhost_rabbitmq_refuses_is_named_in_the_error(amqp_url):
    parts = urllib.parse.urlsplit(amqp_url)
    url = urllib.parse.urlunsplit(parts._replace(path="/taskq-no-such-vhost"))
    broker = AmqpBroker(url, send_timeout_s=0.3)
    with pytest.raises(
        AmqpUnavailableError, match="refused to open the vhost 'taskq-no-such-vhost'"
    ):
        await broker.startup()
    with pytest.raises(SendUnavailableError, match="taskq-no-such-vhost"):
        await broker.kick(message(b"x"))
    await broker.shutdown()


async def test_a_refused_login_is_named_in_the_error_after_the_retries(amqp_url):
    parts = urllib.parse.urlsplit(amqp_url)
    host = f"{parts.hostname}:{parts.port or 5672}"
    url = urllib.parse.urlunsplit(parts._replace(netloc=f"guest:not-the-password@{host}"))
    broker = AmqpBroker(url, send_timeout_s=0.3)
    with pytest.raises(AmqpUnavailableError, match="refused the login") as raised:
        await broker.startup()
    assert "ACCESS_REFUSED" in str(raised.value)
    assert "did not answer" not in str(raised.value)
    assert "not-the-password" not in str(raised.value)
    with pytest.raises(SendUnavailableError, match="refused the login"):
        await broker.kick(message(b"x"))
    await broker.shutdown()


async def test_a_kick_to_a_deleted_queue_fails_instead_of_being_lost(new_broker):
    broker = await new_broker(worker=False)
    await broker.kick(message(b"before"))
    await broker.delete_queues()  # by another process, say, while this one runs
    with pytest.raises(UnroutableError, match=rf"no queue '{broker.queue_name}' exists"):
        await broker.kick(message(b"after"))
    await broker.kick(message(b"again"))  # the queues are declared again
    (item,) = await take(broker, 1)
    assert item.data == b"again"
    await item.ack()


async def test_a_consumer_whose_queue_was_deleted_consumes_it_again(new_broker):
    """RabbitMQ cancels the consumers of a deleted queue: the worker must not stay idle."""
    worker = await new_broker()
    client = await new_broker(worker=False)
    got: list[bytes] = []

    async def consume() -> None:
        async for item in worker.listen():
            got.append(item.data)
            await item.ack()

    consuming = asyncio.create_task(consume())
    try:
        await client.kick(message(b"before"))
        await eventually(lambda: got == [b"before"], timeout=30)
        await client.delete_queues()  # an operator deletes the queue (to empty it, say)
        try:  # unroutable, unless the worker has declared the queue again already
            await client.kick(message(b"lost"))
            expected = [b"before", b"lost", b"after"]
        except UnroutableError:
            expected = [b"before", b"after"]
        await client.kick(message(b"after"))  # declared again
        await eventually(lambda: got == expected, timeout=30)
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)


async def test_a_listen_cancelled_while_it_starts_ends_and_leaves_no_consumer(new_broker):
    # aiormq's calls use asyncio.wait_for, which before Python 3.12 swallows a cancellation
    # that arrives as its call completes: cancelled at each moment of its start, every
    # listen() must end, and the consumer it was registering must not stay behind
    client = await new_broker(worker=False)
    await client.kick(message(b"declares the queue"))
    channel = await client.publisher.channel()

    async def no_consumer() -> bool:
        declared = await channel.queue_declare(client.queue_name, passive=True)
        return not declared.consumer_count

    for step in range(40):
        broker = await new_broker()

        async def consume(broker: AmqpBroker = broker) -> None:
            async for item in broker.listen():
                await item.release()

        listening = asyncio.create_task(consume())
        await asyncio.sleep(step * 0.0005)
        listening.cancel()
        done, _ = await asyncio.wait({listening}, timeout=5)
        assert done, f"listen() went on after a cancel {step * 0.5} ms into its start"
        # a registration still on its way when listen() ended cancels itself once done
        await eventually(no_consumer, what=f"no consumer left after a cancel at {step * 0.5} ms")
        await broker.shutdown()


async def test_messages_taken_by_a_consumer_that_goes_away_are_redelivered(new_broker):
    broker = await new_broker()
    for n in range(10):
        await broker.kick(message(b"%d" % n))
    first = await new_broker()
    taken = await take(first, 10)
    await taken[0].ack()
    await first.shutdown()
    rest = await take(broker, 9)
    assert sorted(item.data for item in rest) == [b"%d" % n for n in range(1, 10)]
    for item in rest:
        await item.ack()


async def test_a_counted_redelivery_leaves_the_message_once_in_the_queue(new_broker):
    broker = await new_broker(max_deliveries=5)
    await broker.kick(message(b"once"))
    for _ in range(2):  # two consumers take it and go away without settling it
        gone = await new_broker(max_deliveries=5)
        await take(gone, 1)
        await gone.shutdown()
    (item,) = await take(broker, 1)
    assert item.data == b"once"
    channel = await broker.publisher.channel()
    queued = await channel.queue_declare(broker.queue_name, passive=True)
    assert queued.message_count == 0, "counting the redelivery left a copy in the queue"
    await item.ack()
    with pytest.raises(asyncio.TimeoutError):  # not a second time
        await take(broker, 1, timeout=2)


async def test_a_worker_takes_only_what_its_receiver_can_run(new_broker):
    broker = await new_broker(max_deliveries=None)
    release = asyncio.Event()

    @broker.task(task_name="amqp:wait")
    async def wait() -> None:
        await release.wait()

    for _ in range(10):
        await wait.kiq()
    worker = asyncio.create_task(Receiver(broker, max_async_tasks=3).listen())

    async def ready() -> int:
        channel = await broker.publisher.channel()
        return int((await channel.queue_declare(broker.queue_name, passive=True)).message_count)

    await eventually(lambda: ready_count(ready, 7), timeout=30)
    await asyncio.sleep(0.3)  # a quiet period: a prefetch without a limit takes them all
    assert await ready() == 7, "the worker took more messages than it can run (prefetch)"
    assert broker.worker_capacity == 3
    release.set()
    await eventually(lambda: ready_count(ready, 0), timeout=30)
    await broker.shutdown()
    await worker


async def ready_count(ready: Any, expected: int) -> bool:
    return await ready() == expected


@pytest.mark.parametrize("value", [math.inf, math.nan, 0, -1])
@pytest.mark.parametrize("name", ["send_timeout_s", "reconnect_max_delay_s"])
def test_seconds_that_make_no_sense_are_refused(name: str, value: float) -> None:
    with pytest.raises(
        ValueError, match=rf"^{name} must be a finite number of seconds greater than 0, got "
    ):
        AmqpBroker(**{name: value})


@pytest.mark.parametrize("value", [math.inf, math.nan, 0, -1, 1.5])
@pytest.mark.parametrize(
    ("name", "bounds"),
    [
        ("prefetch_count", "of at least 1"),
        ("max_deliveries", "of at least 1"),
        ("max_priority", "from 1 to 255"),
    ],
)
def test_counts_that_are_not_integers_in_range_are_refused(
    name: str, bounds: str, value: float
) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be an integer {bounds}, or None, got "):
        AmqpBroker(**{name: value})
