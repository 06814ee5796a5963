"""The broker suite: what every broker must do, then each capability it may declare."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from taskq import (
    AckableMessage,
    AsyncBroker,
    BrokerMessage,
    CancellationUnavailableError,
    Capability,
    Receiver,
    TaskCancelledError,
    TaskiqMessage,
    TaskiqResultTimeoutError,
    UnsupportedCapabilityError,
)
from taskq.exceptions import InspectUnsupportedError
from taskq.inspection import QueueInspection
from taskq_conformance.instances import (
    FACTORY_CONTRACT,
    LEASE_MARGIN,
    NewBroker,
    lease_of,
    payload,
    run_in_another_process,
    settle,
)
from taskq_conformance.settings import Settings
from taskq_conformance.tags import TAGS
from taskq_conformance.targets import Target

#: Seconds a broker may take to deliver what the suite waits for.
DELIVERY_TIMEOUT = 30.0
#: Seconds the suite waits for a message that must not come (a duplicate, an early delay).
QUIET_PERIOD = 0.5
#: Seconds a delayed message may come before its due moment (clocks of other machines).
EARLY = 0.05
#: Seconds `listen()` may run on after shutdown.
LISTEN_END_TIMEOUT = 5.0
#: When a ``listen()`` is cancelled into its start, one broker each: after 0 to 9 turns of the
#: event loop, then after 0.5 to 5 ms (a start that talks to a server takes a few).
LISTEN_START_MOMENTS = [
    *((turns, 0.0) for turns in range(10)),
    *((0, k / 2000) for k in range(1, 11)),
]
#: Seconds of the ``delay`` of the message the ``inspect`` check counts as delayed.
INSPECT_DELAY = 5.0
#: The counts of `QueueInspection`, as the ``inspect`` check compares them.
COUNTS = ("ready", "delayed", "in_flight", "dead")
#: Seconds a running task may go on after its cancellation (the promise is 1 s; a loaded
#: machine gets more).
CANCEL_TIMEOUT = 10.0


def raw_message(data: bytes, **labels: Any) -> BrokerMessage:
    """A broker message with a fresh task id carrying ``data``."""
    return BrokerMessage(uuid.uuid4().hex, "conformance:raw", data, labels)


def tagged_message(body: bytes, **labels: Any) -> BrokerMessage:
    """A broker message carrying ``body`` behind the current check's tag."""
    return raw_message(TAGS.tag(body), **labels)


def body_of(item: Any) -> bytes:
    """The body a message yielded by ``listen`` carries behind its tag."""
    return TAGS.body(payload(item))


async def set_aside(item: Any) -> None:
    """Record a message the check did not send, and acknowledge it so that it does not return."""
    TAGS.record(payload(item))
    await settle(item)


class Inbox:
    """Pumps ``broker.listen()`` into a queue, so waiting for a message never cancels listen().

    Only the messages ``mine`` accepts (by default: those carrying the current check's tag)
    are queued; the others were left by an earlier run or check, and are set aside.
    """

    def __init__(self, broker: AsyncBroker, mine: Callable[[bytes], bool] | None = None) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.mine = mine or TAGS.is_mine
        #: When a message (the check's or not) last came.
        self.last_came = time.monotonic()
        self.pump = asyncio.create_task(self._pump(broker))

    async def _pump(self, broker: AsyncBroker) -> None:
        async for item in broker.listen():
            self.last_came = time.monotonic()
            if self.mine(payload(item)):
                self.queue.put_nowait(item)
            else:
                await set_aside(item)

    async def take(
        self, count: int, timeout: float = DELIVERY_TIMEOUT, *, hint: str = ""
    ) -> list[Any]:
        """Take ``count`` messages; fail past ``timeout`` seconds, saying how many came.

        ``hint`` ends the failure message: what to check first.
        """
        received: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(received) < count:
            item = await self.next(deadline - time.monotonic())
            if item is None:
                pytest.fail(
                    f"only {len(received)} of {count} messages were delivered within {timeout} s"
                    + (f"; {hint}" if hint else "")
                    + TAGS.note()
                )
            received.append(item)
        return received

    async def next(self, wait: float = QUIET_PERIOD) -> Any:
        """The next message within ``wait`` seconds, or None."""
        try:
            return await asyncio.wait_for(self.queue.get(), max(wait, 0.001))
        except asyncio.TimeoutError:
            return None

    async def drain(self) -> None:
        """Settle what comes until nothing at all (the check's or not) came for `QUIET_PERIOD`."""
        while True:
            quiet_for = time.monotonic() - self.last_came
            if quiet_for >= QUIET_PERIOD and self.queue.empty():
                return
            if (item := await self.next(QUIET_PERIOD - quiet_for)) is not None:
                await settle(item)

    async def close(self) -> None:
        """Stop pumping."""
        self.pump.cancel()
        await asyncio.gather(self.pump, return_exceptions=True)


@asynccontextmanager
async def inbox(
    broker: AsyncBroker, mine: Callable[[bytes], bool] | None = None
) -> AsyncIterator[Inbox]:
    """An `Inbox` on ``broker`` (queueing what ``mine`` accepts) for the duration of the block."""
    box = Inbox(broker, mine)
    await asyncio.sleep(0)  # let the consumer subscribe before anything is sent
    try:
        yield box
    finally:
        await box.close()


# -- mandatory -------------------------------------------------------------------------------


async def test_startup_and_shutdown_twice(taskq_new_broker: NewBroker) -> None:
    async with taskq_new_broker() as broker:
        await broker.shutdown()
    # the context manager shuts it down a second time: that must be harmless


async def test_listen_ends_after_shutdown(taskq_new_broker: NewBroker) -> None:
    async with taskq_new_broker() as broker:
        box = Inbox(broker)
        await asyncio.sleep(0.1)
        await broker.shutdown()
        done, _ = await asyncio.wait({box.pump}, timeout=LISTEN_END_TIMEOUT)
        await box.close()
        assert done, f"listen() still runs {LISTEN_END_TIMEOUT} s after shutdown()"


async def test_a_listen_cancelled_while_it_starts_ends(taskq_new_broker: NewBroker) -> None:
    # before Python 3.12, asyncio.wait_for swallows a cancellation that arrives as its call
    # completes, and client libraries use it (redis-py around each write): a listen() that
    # ran its start (connecting, declaring, a first read) in the listening task went on
    for turns, seconds in LISTEN_START_MOMENTS:
        async with taskq_new_broker() as broker:
            box = Inbox(broker)
            for _ in range(turns):
                await asyncio.sleep(0)
            await asyncio.sleep(seconds)
            box.pump.cancel()
            done, _ = await asyncio.wait({box.pump}, timeout=LISTEN_END_TIMEOUT)
            await box.close()
            when = f"{turns} turn(s) of the event loop" if turns else f"{seconds * 1000:g} ms"
            assert done, (
                f"listen() went on for {LISTEN_END_TIMEOUT} s after its task was cancelled "
                f"{when} into its start: a CancelledError was swallowed there (run the start "
                "in a task of its own and await that, e.g. with asyncio.wait)"
            )


async def test_each_message_is_delivered_exactly_once(taskq_new_broker: NewBroker) -> None:
    count = 1000
    async with taskq_new_broker() as broker, inbox(broker) as box:
        await asyncio.gather(*(broker.kick(tagged_message(b"%d" % n)) for n in range(count)))
        received = await box.take(count)
        for item in received:
            await settle(item)
        times = Counter(int(body_of(item)) for item in received)
        missing = count - len(times)
        assert not missing, (
            f"of {count} messages kicked at once, {missing} never came in the first "
            f"{count} deliveries, which repeated others (one came {max(times.values())} times)"
        )
        assert sorted(times) == list(range(count)), "the bytes of some messages were changed"
        extra = await box.next()
        assert extra is None, f"a message was delivered again: {payload(extra)[:40]!r}"


@pytest.mark.parametrize(
    ("head", "tail"),
    [
        (b"", b""),
        (b"\xff\xfe\x00\x80 not utf-8 ", b" \xc3\x28"),
        (b"\x00\x00 zero bytes at both ends ", b" \x00\x00"),
        (bytes(range(256)) * 2048, bytes(range(256)) * 2048),
    ],
    ids=["empty", "non-utf8", "zero-bytes", "1MiB"],
)
async def test_bytes_round_trip_exactly(
    taskq_new_broker: NewBroker, head: bytes, tail: bytes
) -> None:
    """``head`` and ``tail`` are sent around the check's tag (the empty message has none)."""
    data = head + TAGS.current + tail if head or tail else b""
    mine = TAGS.is_mine if data else (lambda got: got == b"")
    async with taskq_new_broker() as broker, inbox(broker, mine) as box:
        await broker.kick(raw_message(data))
        (item,) = await box.take(1)
        await settle(item)
        got = payload(item)
        assert len(got) == len(data), f"sent {len(data)} bytes, received {len(got)}"
        assert got == data, "the message bytes were changed in transit"


async def test_labels_round_trip(taskq_new_broker: NewBroker) -> None:
    labels = {"text": "é", "number": 7, "ratio": 0.5, "flag": True, "nested": {"a": [1, 2]}}
    task_id = TAGS.tag().decode() + uuid.uuid4().hex
    sent = TaskiqMessage(task_id, "conformance:labels", labels, [1], {"k": "v"})
    async with taskq_new_broker() as broker:

        def mine(data: bytes) -> bool:  # a compressing formatter hides the tag: decode
            try:
                return broker.formatter.loads(data).task_id == task_id
            except Exception:  # not a task message at all
                return False

        async with inbox(broker, mine) as box:
            await broker.kick(broker.formatter.dumps(sent))
            (item,) = await box.take(1)
            await settle(item)
        received = broker.formatter.loads(payload(item))
        assert received.labels == labels, f"labels changed in transit: {received.labels!r}"
        assert received == sent


async def test_task_runs_end_to_end_and_its_result_is_readable(taskq_new_broker: NewBroker) -> None:
    async with taskq_new_broker() as broker:

        @broker.task(task_name=f"conformance:add:{uuid.uuid4().hex}")
        async def add(a: int, b: int) -> int:
            return a + b

        receiver = Receiver(broker)
        worker = asyncio.create_task(receiver.listen())
        try:
            task = await add.kiq(2, 40)
            result = await task.wait_result(timeout=DELIVERY_TIMEOUT)
        finally:
            await broker.shutdown()
            await asyncio.wait_for(worker, LISTEN_END_TIMEOUT)
        assert not result.is_err, f"the task failed: {result.error!r}"
        assert result.return_value == 42


# -- undeclared capabilities fail loudly -------------------------------------------------------


@pytest.mark.taskq_lacks(Capability.DELAY)
async def test_delay_label_is_refused_without_the_capability(taskq_new_broker: NewBroker) -> None:
    await _label_is_refused(taskq_new_broker, delay=1)


@pytest.mark.taskq_lacks(Capability.PRIORITY)
async def test_priority_label_is_refused_without_the_capability(
    taskq_new_broker: NewBroker,
) -> None:
    await _label_is_refused(taskq_new_broker, priority=5)


async def _label_is_refused(new_broker: NewBroker, **labels: Any) -> None:
    async with new_broker(worker=False) as broker:

        @broker.task(task_name=f"conformance:refused:{uuid.uuid4().hex}")
        async def job() -> None: ...

        with pytest.raises(UnsupportedCapabilityError):
            await job.kicker().with_labels(**labels).kiq()


@pytest.mark.taskq_lacks(Capability.ACKS)
async def test_messages_are_not_ackable_without_the_capability(taskq_new_broker: NewBroker) -> None:
    async with taskq_new_broker() as broker, inbox(broker) as box:
        await broker.kick(tagged_message(b"x"))
        (item,) = await box.take(1)
        assert not isinstance(item, AckableMessage), (
            "listen() yields AckableMessage but the broker does not declare 'acks'"
        )


@pytest.mark.taskq_lacks(Capability.INSPECT)
async def test_inspect_is_refused_without_the_capability(taskq_new_broker: NewBroker) -> None:
    async with taskq_new_broker() as broker:
        with pytest.raises(InspectUnsupportedError):
            await broker.inspect()


@pytest.mark.taskq_requires(Capability.ACKS)
@pytest.mark.taskq_lacks(Capability.REJECT)
async def test_messages_are_not_rejectable_without_the_capability(
    taskq_new_broker: NewBroker,
) -> None:
    async with taskq_new_broker() as broker, inbox(broker) as box:
        await broker.kick(tagged_message(b"x"))
        (item,) = await box.take(1)
        await settle(item)
        assert item.reject is None, "messages have reject() but the broker does not declare it"


# -- declared capabilities -----------------------------------------------------------------------


@pytest.mark.taskq_requires(Capability.ACKS)
async def test_acks(taskq_new_broker: NewBroker) -> None:
    """An acknowledged message does not come back, even once an unacknowledged one has.

    With ``redelivery`` a second message is taken but left unacknowledged: it comes back
    (within two leases), and the acknowledged one, had its ``ack`` been lost, would come
    back with it. Without, a second broker listens for a second.
    """
    acked, witness = TAGS.tag(b"acked"), TAGS.tag(b"witness")
    async with taskq_new_broker() as broker, inbox(broker) as box:
        redelivery = Capability.REDELIVERY in broker.capabilities
        window = 2 * lease_of(broker) + LEASE_MARGIN if redelivery else 0.0
        await broker.kick(raw_message(acked))
        if redelivery:
            await broker.kick(raw_message(witness))
        for item in await box.take(2 if redelivery else 1):
            assert isinstance(item, AckableMessage), "listen() must yield AckableMessage"
            if payload(item) != witness:
                await settle(item)
    async with taskq_new_broker() as broker, inbox(broker) as box:
        deadline = time.monotonic() + window
        while (item := await box.next(deadline - time.monotonic())) is not None:
            await settle(item)
            assert payload(item) != acked, "an acknowledged message came back"
            if payload(item) == witness:
                break
        else:
            if redelivery:
                pytest.fail(
                    f"a message taken but not acknowledged did not come back in {window:g} s "
                    f"to a second broker made by the factory; {FACTORY_CONTRACT}"
                )
        again = await box.next(2 * QUIET_PERIOD)
        assert again is None or payload(again) != acked, "an acknowledged message came back" + (
            " after an unacknowledged one held with it" if redelivery else ""
        )


@pytest.mark.taskq_requires(Capability.REJECT)
async def test_reject(taskq_new_broker: NewBroker) -> None:
    async with taskq_new_broker() as broker, inbox(broker) as box:
        await broker.kick(tagged_message(b"reject me"))
        (item,) = await box.take(1)
        assert isinstance(item, AckableMessage)
        assert item.reject is not None, "messages must have reject() with 'reject'"
        outcome = item.reject()
        if outcome is not None:
            await outcome
        again = await box.next(2 * QUIET_PERIOD)
        assert again is None, "a rejected message was delivered again"


@pytest.mark.taskq_requires(Capability.REDELIVERY)
async def test_redelivery_after_the_consumer_is_gone(taskq_new_broker: NewBroker) -> None:
    marker = TAGS.tag(b"redelivered")
    async with taskq_new_broker() as broker, inbox(broker) as box:
        window = 2 * lease_of(broker) + LEASE_MARGIN
        await broker.kick(raw_message(marker))
        (item,) = await box.take(1)
        assert payload(item) == marker
        # taken, never acknowledged: now the consumer goes away
    async with taskq_new_broker() as broker, inbox(broker) as box:
        deadline = time.monotonic() + window
        while (item := await box.next(deadline - time.monotonic())) is not None:
            await settle(item)
            if payload(item) == marker:
                return
        pytest.fail(
            f"a message taken but not acknowledged was not redelivered in {window:g} s (twice "
            "the lease_s, plus a margin) to a second broker made by the factory: either the "
            "broker loses unacknowledged messages, or the second broker does not reach the "
            f"first one's queue; {FACTORY_CONTRACT}"
        )


@pytest.mark.taskq_requires(Capability.DELAY)
async def test_delay(taskq_new_broker: NewBroker, taskq_settings: Settings) -> None:
    delay, tolerance = 1.0, taskq_settings.tolerance
    async with taskq_new_broker() as broker, inbox(broker) as box:
        sent_at = time.monotonic()
        await broker.kick(tagged_message(b"later", delay=delay))
        early = await box.next(delay - EARLY)
        assert early is None, f"delivered {time.monotonic() - sent_at:.2f} s into a {delay} s delay"
        (item,) = await box.take(1)
        await settle(item)
        elapsed = time.monotonic() - sent_at
        assert elapsed >= delay - EARLY, (
            f"a message delayed {delay} s was delivered after {elapsed:.2f} s, before its delay "
            f"ended (by more than the {EARLY} s allowed for clocks)"
        )
        assert elapsed <= delay + tolerance, (
            f"a message delayed {delay} s was delivered after {elapsed:.2f} s, later than the "
            f"timing tolerance of {tolerance} s allows (--taskq-timing-tolerance)"
        )


@pytest.mark.taskq_requires(Capability.PRIORITY)
async def test_priority_under_a_backlog(taskq_new_broker: NewBroker) -> None:
    await _priority_under_a_backlog(taskq_new_broker, batch=False)


async def _priority_under_a_backlog(new_broker: NewBroker, *, batch: bool) -> None:
    """A backlog sent one by one (or in one `kick_many`) comes out highest priority first."""
    priorities = [0, 3, 1, 9, 0, 5, 3, 9, 1, 5]
    async with new_broker() as broker:
        messages = [tagged_message(b"%d" % n, priority=p) for n, p in enumerate(priorities)]
        if batch:
            await broker.kick_many(messages)
        else:
            for message in messages:
                await broker.kick(message)
        await asyncio.sleep(QUIET_PERIOD)
        received: list[int] = []

        async def read_backlog() -> None:  # each settled before the next is read
            async for item in broker.listen():
                if not TAGS.is_mine(payload(item)):
                    await set_aside(item)
                    continue
                received.append(priorities[int(body_of(item))])
                await settle(item)
                if len(received) == len(priorities):
                    return

        try:
            await asyncio.wait_for(read_backlog(), DELIVERY_TIMEOUT)
        except asyncio.TimeoutError:
            pytest.fail(
                f"only {len(received)} of the backlog's {len(priorities)} messages were "
                f"delivered within {DELIVERY_TIMEOUT} s (priorities {received})" + TAGS.note()
            )
        assert received == sorted(priorities, reverse=True), (
            f"a backlog was delivered in the priority order {received}, not highest first"
        )


# -- batch sending ---------------------------------------------------------------------------

#: Messages of the batch the ``batch_send`` checks send in one `kick_many`.
BATCH_SIZE = 300


def batch_body(n: int) -> bytes:
    """The distinct body of the ``n``-th message of a batch (not UTF-8, some of it), tagged."""
    return TAGS.tag(b"%d:" % n + bytes(range(n % 7 * 40)))


@pytest.mark.taskq_requires(Capability.BATCH_SEND)
async def test_batch_send_delivers_each_message_once(taskq_new_broker: NewBroker) -> None:
    async with taskq_new_broker() as broker, inbox(broker) as box:
        await broker.kick_many([raw_message(batch_body(n)) for n in range(BATCH_SIZE)])
        received = await box.take(BATCH_SIZE, hint="kick_many lost messages of its batch")
        for item in received:
            await settle(item)
        bodies = sorted(payload(item) for item in received)
        expected = sorted(batch_body(n) for n in range(BATCH_SIZE))
        changed = len(set(bodies) - set(expected))
        assert not changed, f"{changed} messages of a kick_many batch changed in transit"
        assert bodies == expected, "kick_many delivered some messages twice and lost others"
        extra = await box.next()
        assert extra is None, f"a message of the batch came again: {payload(extra)[:40]!r}"


@pytest.mark.taskq_requires(Capability.BATCH_SEND)
async def test_batch_send_of_nothing_sends_nothing(taskq_new_broker: NewBroker) -> None:
    marker = TAGS.tag(b"after nothing")
    async with taskq_new_broker() as broker, inbox(broker) as box:
        await broker.kick_many([])
        await broker.kick(raw_message(marker))
        (item,) = await box.take(1)
        await settle(item)
        assert payload(item) == marker, f"kick_many([]) sent {payload(item)[:40]!r}"
        extra = await box.next()
        assert extra is None, f"kick_many([]) sent {payload(extra)[:40]!r}"


@pytest.mark.taskq_requires(Capability.BATCH_SEND)  # the category: listed last, so on top
@pytest.mark.taskq_requires(Capability.DELAY)
async def test_batch_send_honours_delay(taskq_new_broker: NewBroker) -> None:
    delay = 1.0
    async with taskq_new_broker() as broker, inbox(broker) as box:
        sent_at = time.monotonic()
        await broker.kick_many([tagged_message(b"later", delay=delay), tagged_message(b"now")])
        (first,) = await box.take(1)
        await settle(first)
        assert body_of(first) == b"now", "the delayed message of a batch came before the other"
        (second,) = await box.take(1)
        await settle(second)
        elapsed = time.monotonic() - sent_at
        assert body_of(second) == b"later"
        assert elapsed >= delay - EARLY, (
            f"a message of a batch delayed {delay} s was delivered after {elapsed:.2f} s"
        )


@pytest.mark.taskq_requires(Capability.BATCH_SEND)
@pytest.mark.taskq_requires(Capability.PRIORITY)
async def test_batch_send_honours_priority(taskq_new_broker: NewBroker) -> None:
    await _priority_under_a_backlog(taskq_new_broker, batch=True)


@pytest.mark.taskq_requires(Capability.LOAD_BALANCING)
async def test_load_balancing(taskq_new_broker: NewBroker, taskq_broker_target: Target) -> None:
    count, consumers = 300, 3
    async with taskq_new_broker() as broker:
        buckets: list[list[bytes]] = [[] for _ in range(consumers)]

        async def consume(bucket: list[bytes], source: AsyncBroker) -> None:
            async for item in source.listen():
                if not TAGS.is_mine(payload(item)):
                    await set_aside(item)
                    continue
                bucket.append(payload(item))
                await settle(item)
                await asyncio.sleep(0.001)

        tasks = [asyncio.create_task(consume(bucket, broker)) for bucket in buckets]
        await asyncio.sleep(0.1)
        for n in range(count):
            await broker.kick(tagged_message(b"%d" % n))
        for _ in range(int(DELIVERY_TIMEOUT / QUIET_PERIOD)):
            await asyncio.sleep(QUIET_PERIOD)
            if sum(map(len, buckets)) >= count:
                break
        await asyncio.sleep(QUIET_PERIOD)
        await broker.shutdown()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), LISTEN_END_TIMEOUT)
    everything = [body for bucket in buckets for body in bucket]
    assert len(everything) == count, f"{len(everything)} deliveries for {count} messages"
    assert len(set(everything)) == count, "a message went to more than one consumer"
    idle = [n for n, bucket in enumerate(buckets) if not bucket]
    assert not idle, f"consumers {idle} got no message: the load is not shared"


@pytest.mark.taskq_requires(Capability.CROSS_PROCESS)
async def test_cross_process(taskq_new_broker: NewBroker, taskq_broker_target: Target) -> None:
    if taskq_broker_target.spec is None:
        pytest.skip("the broker comes from a hook: another process cannot make one")
    count = 20
    async with taskq_new_broker() as broker, inbox(broker) as box:
        await asyncio.sleep(0.2)
        spec = taskq_broker_target.spec
        await asyncio.to_thread(_kick_from_another_process, spec, TAGS.current, count)
        received = await box.take(
            count,
            hint="the messages were sent by a broker another process made with the factory; "
            + FACTORY_CONTRACT,
        )
        for item in received:
            await settle(item)
        assert sorted(int(body_of(item)) for item in received) == list(range(count))


def _kick_from_another_process(spec: str, tag: bytes, count: int) -> None:
    body = (
        f"for n in range({count}):\n"
        f"    data = {tag!r} + b'%d' % n\n"
        "    message = taskq.BrokerMessage(uuid.uuid4().hex, 'conformance:x', data, {})\n"
        "    await instance.kick(message)"
    )
    run_in_another_process(spec, body, DELIVERY_TIMEOUT)


@pytest.mark.taskq_requires(Capability.INSPECT)
async def test_inspect_counts_messages_by_state(taskq_new_broker: NewBroker) -> None:
    await _clear_leftovers(taskq_new_broker)
    markers = {TAGS.tag(b"inspected %d" % n) for n in range(3)}
    async with taskq_new_broker() as broker:
        capabilities = broker.capabilities
        base = await broker.inspect()
        # a broker with backpressure sends only once a consumer has room: kick in the background
        kicks = asyncio.gather(*(broker.kick(raw_message(marker)) for marker in markers))
        await _counts_become(broker, base, "3 messages sent", queued=3)
        delayed = 0
        late = TAGS.tag(b"inspected late")
        if Capability.DELAY in capabilities:
            await broker.kick(raw_message(late, delay=INSPECT_DELAY))
            delayed = 1
            await _counts_become(broker, base, "a delayed message sent", queued=3, delayed=1)
        async with inbox(broker) as box:
            mine = await _take_marked(box, markers)
            await kicks
            await _consumers_listed(broker)
            dead = 0
            if Capability.ACKS in capabilities:
                dead = await _check_settling(broker, base, mine, delayed)
            else:
                await _counts_become(broker, base, "taken (without acks)", delayed=delayed)
            if delayed:
                (item,) = await _take_marked(box, {late})
                await settle(item)
                await _counts_become(broker, base, "the delayed message settled", dead=dead)


async def _clear_leftovers(new_broker: NewBroker) -> None:
    """Set aside what earlier runs and checks left in the queue, before the counts are taken.

    Goes on until ``inspect()`` shows nothing ready, delayed or in flight (what a killed
    consumer held comes back after its lease), for at most `DELIVERY_TIMEOUT` seconds: what is
    still there then (a long delay, another consumer) stays in the counts the check starts from.
    """
    async with new_broker() as drainer, inbox(drainer) as box:
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while True:
            await box.drain()
            now = await drainer.inspect()
            if not (now.ready or now.delayed or now.in_flight) or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.05)


async def _check_settling(
    broker: AsyncBroker, base: QueueInspection, taken: list[Any], delayed: int
) -> int:
    """In flight while taken; settled by acks; dead once rejected (with ``reject``).

    Returns how many messages it made dead.
    """
    await _counts_become(broker, base, "3 taken, none settled", in_flight=3, delayed=delayed)
    for item in taken[:2]:
        await settle(item)
    await _counts_become(broker, base, "2 of 3 acknowledged", in_flight=1, delayed=delayed)
    last = taken[2]
    if Capability.REJECT in broker.capabilities:
        outcome = last.reject()
        if outcome is not None:
            await outcome
        await _counts_become(broker, base, "the third rejected", dead=1, delayed=delayed)
        return 1
    await settle(last)
    await _counts_become(broker, base, "all 3 acknowledged", delayed=delayed)
    return 0


async def _take_marked(box: Inbox, markers: set[bytes]) -> list[Any]:
    """Take messages until those carrying ``markers`` came (others are settled), unsettled."""
    mine: list[Any] = []
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while len(mine) < len(markers):
        item = await box.next(deadline - time.monotonic())
        if item is None:
            pytest.fail(f"only {len(mine)} of {len(markers)} messages were delivered" + TAGS.note())
        if payload(item) in markers:
            mine.append(item)
        else:
            await settle(item)
    return mine


async def _counts_become(
    broker: AsyncBroker,
    base: QueueInspection,
    after: str,
    queued: int = 0,
    **expected: int,
) -> None:
    """Wait until ``inspect()`` shows ``expected`` more than ``base`` (0 where not given).

    ``queued`` messages may be ready or already in flight (in a consumer's buffer, say):
    their sum is checked; without ``queued``, ``ready`` must be back to its base.
    """
    wanted = {name: expected.get(name, 0) for name in COUNTS}
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while True:
        now = await broker.inspect()
        seen = {name: getattr(now, name) - getattr(base, name) for name in COUNTS}
        if queued:
            fits = seen["ready"] + seen["in_flight"] == queued + wanted["in_flight"] and all(
                seen[name] == wanted[name] for name in ("delayed", "dead")
            )
        else:
            fits = seen == wanted
        if fits:
            return
        if time.monotonic() > deadline:
            want = dict(wanted, ready_plus_in_flight=queued) if queued else wanted
            pytest.fail(
                f"after {after}, inspect() counts changed by {seen} from {base}, "
                f"not by {want}, within {DELIVERY_TIMEOUT} s"
            )
        await asyncio.sleep(0.05)


async def _consumers_listed(broker: AsyncBroker) -> None:
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while not (await broker.inspect()).consumers:
        if time.monotonic() > deadline:
            pytest.fail("inspect() lists no consumer while one listens")
        await asyncio.sleep(0.05)


# -- cancellation ----------------------------------------------------------------------------


@pytest.mark.taskq_lacks(Capability.CANCEL)
async def test_cancel_is_refused_without_the_capability(taskq_new_broker: NewBroker) -> None:
    async with taskq_new_broker(worker=False) as broker:
        assert broker.cancellation is None, (
            "the broker has a cancellation store: declare Capability.CANCEL (and pass its checks)"
        )
        with pytest.raises(CancellationUnavailableError):
            await broker.cancel(uuid.uuid4().hex)


@pytest.mark.taskq_requires(Capability.CANCEL)
async def test_a_cancelled_queued_task_never_runs(taskq_new_broker: NewBroker) -> None:
    ran: list[int] = []
    async with taskq_new_broker() as broker:

        @broker.task(task_name=f"conformance:cancelled:{uuid.uuid4().hex}")
        async def job() -> None:
            ran.append(1)

        task = await job.kiq()
        await task.cancel("conformance")
        async with _receiving(broker):
            result = await task.wait_result(timeout=DELIVERY_TIMEOUT)
    assert ran == [], "a task cancelled while queued ran"
    assert isinstance(result.error, TaskCancelledError), (
        f"a cancelled task's result must fail with TaskCancelledError, not {result.error!r}"
    )
    assert result.error.reason == "conformance"


@pytest.mark.taskq_requires(Capability.CANCEL)
async def test_a_cancelled_running_task_is_stopped(taskq_new_broker: NewBroker) -> None:
    started = asyncio.Event()
    async with taskq_new_broker() as broker:

        @broker.task(task_name=f"conformance:running:{uuid.uuid4().hex}")
        async def job() -> None:
            started.set()
            await asyncio.sleep(10 * DELIVERY_TIMEOUT)

        async with _receiving(broker):
            task = await job.kiq()
            await asyncio.wait_for(started.wait(), DELIVERY_TIMEOUT)
            await task.cancel()
            try:
                result = await task.wait_result(timeout=CANCEL_TIMEOUT)
            except TaskiqResultTimeoutError:
                pytest.fail(f"a running task went on {CANCEL_TIMEOUT} s after its cancellation")
    assert isinstance(result.error, TaskCancelledError), repr(result.error)


@asynccontextmanager
async def _receiving(broker: AsyncBroker) -> AsyncIterator[None]:
    """A `Receiver` running ``broker``'s messages for the duration of the block.

    At the end, a task still running is left to the end of the test.
    """
    finished = asyncio.Event()
    receiver = Receiver(broker, wait_tasks_timeout=LISTEN_END_TIMEOUT / 2)
    worker = asyncio.create_task(receiver.listen(finished))
    try:
        yield
    finally:
        finished.set()
        await asyncio.wait_for(worker, LISTEN_END_TIMEOUT)
