"""Messages queued decoded: the task sees exactly what decoding the bytes would give."""

from __future__ import annotations

import datetime
from collections.abc import AsyncGenerator
from typing import Any
from unittest import mock

import pytest

from taskq import (
    AsyncTaskiqTask,
    BrokerMessage,
    Context,
    SerializationError,
    TaskiqDepends,
    TaskiqMessage,
    TaskiqMiddleware,
)
from taskq.event_stores import InMemoryEventStore
from taskq.serializers.pickle import PickleSerializer
from taskq.task_events import EventKind
from taskq_inmemory import InMemoryBroker


@pytest.fixture
async def broker():
    broker = InMemoryBroker()
    await broker.startup()
    yield broker
    await broker.shutdown()


def echo_task(broker: InMemoryBroker) -> Any:
    @broker.task
    async def echo(*args: Any, **kwargs: Any) -> list[Any]:
        return [args, kwargs]

    return echo


async def test_plain_arguments_are_queued_decoded_and_copied(broker):
    sent: list[TaskiqMessage] = []
    kick_decoded = broker.kick_decoded

    async def spy(message: TaskiqMessage) -> None:
        sent.append(message)
        await kick_decoded(message)

    broker.kick_decoded = spy
    echo = echo_task(broker)
    items = [1, "a", {"b": [2.5, None, True]}]
    handle = await echo.kiq(items, key=items)
    items.append("added after kiq")  # a remote worker would not see it: neither does the task

    result = await handle.wait_result()

    assert len(sent) == 1
    expected = [1, "a", {"b": [2.5, None, True]}]
    assert result.return_value == [(expected,), {"key": expected}]


@pytest.mark.parametrize(
    ("argument", "seen"),
    [
        ((1, 2), [1, 2]),  # tuples become lists
        ({1: "x"}, {"1": "x"}),  # keys become text
        (datetime.date(2024, 5, 1), "2024-05-01"),  # converted by the serializer's default
        ("é", "é"),  # non-ASCII text: encoded to be sure
        (2**70, 2**70),  # beyond 64 bits: encoded to be sure
    ],
)
async def test_other_arguments_are_encoded_and_decoded(broker, argument, seen):
    broker.kick_decoded = None  # fails the test if called
    echo = echo_task(broker)

    result = await (await echo.kiq(argument)).wait_result()

    assert not result.is_err, result.error
    assert result.return_value == [(seen,), {}]


async def test_an_argument_that_cannot_be_encoded_fails_kiq(broker):
    echo = echo_task(broker)

    with pytest.raises(SerializationError):
        await echo.kiq(object())


async def test_other_serializers_always_encode(broker):
    broker.with_serializer(PickleSerializer())
    broker.kick_decoded = None  # fails the test if called
    echo = echo_task(broker)

    result = await (await echo.kiq((1, 2))).wait_result()

    assert result.return_value == [((1, 2),), {}]  # pickle keeps the tuple


async def test_a_worker_process_broker_takes_only_bytes():
    broker = InMemoryBroker()
    broker.is_worker_process = True

    assert not broker.takes_decoded()


class KeepsWhatItSends(TaskiqMiddleware):
    """Holds each message it sends, as a tracing middleware may."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[TaskiqMessage] = []

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        self.kept.append(message)
        return message


class KeepsWhatWasSent(TaskiqMiddleware):
    """Holds each message after it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[TaskiqMessage] = []

    def post_send(self, message: TaskiqMessage) -> None:
        self.kept.append(message)


@pytest.mark.parametrize("keeper", [KeepsWhatItSends, KeepsWhatWasSent])
async def test_a_message_a_send_hook_holds_is_not_the_one_the_task_gets(broker, keeper):
    middleware = keeper()
    broker.add_middlewares(middleware)

    @broker.task
    async def labels_seen(context: Context = TaskiqDepends()) -> dict[str, Any]:
        return dict(context.message.labels)

    handle = await labels_seen.kiq()  # no labels, no arguments: nothing to copy but the message
    middleware.kept[0].labels["changed"] = "after the send"  # before the task runs

    assert (await handle.wait_result()).return_value == {}


async def test_listen_encodes_a_message_queued_decoded():
    broker = InMemoryBroker()
    message = TaskiqMessage("id-1", "some:task", {}, [1], {"a": "b"})
    broker.queue.put(message)
    broker.queue.close()

    received = [data async for data in broker.listen()]

    assert received == [broker.formatter.dumps(message).message]


async def test_await_inplace_runs_a_decoded_message_before_kiq_returns():
    broker = InMemoryBroker(await_inplace=True)
    await broker.startup()
    try:
        echo = echo_task(broker)
        handle = await echo.kiq([1])
        assert await handle.is_ready()
        assert (await handle.get_result()).return_value == [([1],), {}]
    finally:
        await broker.shutdown()


class CountingKicks(InMemoryBroker):
    kicked = 0

    async def kick(self, message: BrokerMessage) -> None:
        self.kicked += 1
        await super().kick(message)


class CountingTakes(InMemoryBroker):
    taken = 0

    async def listen(self) -> AsyncGenerator[bytes, None]:
        async for data in super().listen():
            self.taken += 1
            yield data


@pytest.mark.parametrize("kind", [CountingKicks, CountingTakes])
async def test_a_subclass_overriding_kick_or_listen_gets_every_message_through_them(kind):
    broker = kind()
    await broker.startup()
    try:
        echo = echo_task(broker)
        result = await (await echo.kiq([1])).wait_result()
    finally:
        await broker.shutdown()

    assert result.return_value == [([1],), {}]
    assert not broker.takes_decoded()
    assert getattr(broker, "kicked", None) == 1 or getattr(broker, "taken", None) == 1


async def test_a_kick_replaced_on_the_instance_gets_every_message(broker):
    """A test that stands in for ``broker.kick`` sees every message, as bytes."""
    kicked: list[BrokerMessage] = []
    kick = broker.kick

    async def counting(message: BrokerMessage) -> None:
        kicked.append(message)
        await kick(message)

    broker.kick = counting
    echo = echo_task(broker)
    result = await (await echo.kiq([1])).wait_result()
    assert result.return_value == [([1],), {}]
    assert [message.task_name for message in kicked] == [echo.task_name]
    assert not broker.takes_decoded()


async def test_a_kick_forwarded_to_another_broker_sends_there():
    """``broker.kick = other.kick``: the message goes through ``other``, encoded."""
    here, there = InMemoryBroker(), InMemoryBroker()
    echo_task(here)
    echo = echo_task(there)
    here.kick = there.kick  # type: ignore[method-assign]
    async with there:
        await here.startup()
        try:
            assert not here.takes_decoded()
            handle = await echo.kicker().with_broker(here).kiq([1])
            # sent through there's kick: there runs it and holds its result, here holds none
            ran_there = AsyncTaskiqTask(handle.task_id, there.result_backend)
            assert (await ran_there.wait_result(timeout=5)).return_value == [([1],), {}]
            assert here.result_backend.result_now(handle.task_id) is None
        finally:
            await here.shutdown()


async def test_a_kick_patched_on_the_class_gets_every_message(broker):
    """``unittest.mock.patch.object(InMemoryBroker, "kick")`` sees the sends of a started broker."""
    echo = echo_task(broker)
    with mock.patch.object(InMemoryBroker, "kick", autospec=True) as kick:
        await echo.kiq([1])
    assert [call.args[1].task_name for call in kick.call_args_list] == [echo.task_name]
    assert broker.takes_decoded()


def spy_on_kick_decoded(broker: InMemoryBroker) -> list[TaskiqMessage]:
    """The messages ``broker`` queues decoded from now on (its `kick_decoded` still runs)."""
    queued: list[TaskiqMessage] = []
    kick_decoded = broker.kick_decoded

    async def spy(message: TaskiqMessage) -> None:
        queued.append(message)
        await kick_decoded(message)

    broker.kick_decoded = spy  # type: ignore[method-assign]
    return queued


async def test_with_events_a_message_is_queued_decoded_and_its_sent_event_keeps_its_bytes():
    broker = InMemoryBroker().with_event_store(InMemoryEventStore())
    await broker.startup()
    try:
        queued = spy_on_kick_decoded(broker)
        echo = echo_task(broker)
        handle = await echo.kiq([1, "a"], key={"b": None})
        result = await handle.wait_result()
    finally:
        await broker.shutdown()
    assert result.return_value == [([1, "a"],), {"key": {"b": None}}]
    assert len(queued) == 1
    events = await broker.event_store.task_events(handle.task_id)
    sent = events[0]
    assert sent.kind is EventKind.SENT
    encoded = broker.formatter.dumps(queued[0]).message  # what a worker would have been sent
    assert sent.message == encoded
    assert sent.message_size == len(encoded)
    assert [event.kind for event in events[1:]] == [
        EventKind.RECEIVED,
        EventKind.STARTED,
        EventKind.SUCCEEDED,
    ]


async def test_with_events_a_sent_event_over_the_bound_keeps_the_size_only():
    broker = InMemoryBroker().with_event_store(InMemoryEventStore(), max_message_bytes=10)
    await broker.startup()
    try:
        queued = spy_on_kick_decoded(broker)
        handle = await echo_task(broker).kiq("x" * 20)
        await handle.wait_result()
    finally:
        await broker.shutdown()
    assert len(queued) == 1
    (sent, *_) = await broker.event_store.task_events(handle.task_id)
    assert sent.message is None
    assert sent.message_size is not None
    assert sent.message_size > 20
