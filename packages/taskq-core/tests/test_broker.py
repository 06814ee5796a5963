"""The broker contract: registering tasks, sending them, builders, events, capabilities."""

from __future__ import annotations

from typing import Any

import pytest

from taskq import (
    AsyncTaskiqDecoratedTask,
    BrokerMessage,
    SendTaskError,
    SerializationError,
    SharedBrokerListenError,
    SharedBrokerSendTaskError,
    TaskiqEvents,
    TaskiqMessage,
    TaskiqMiddleware,
    UnsupportedCapabilityError,
    async_shared_broker,
)
from taskq.serializers import MSGPackSerializer


def test_task_decorator_forms_and_default_names(recording_broker):
    @recording_broker.task
    def plain() -> int:
        return 1

    @recording_broker.task("custom.name", queue="fast")
    async def named() -> None: ...

    @recording_broker.task(task_name="kw.name")
    async def keyword() -> None: ...

    assert isinstance(plain, AsyncTaskiqDecoratedTask)
    assert plain.task_name == f"{__name__}:plain"
    assert named.labels == {"queue": "fast"}
    assert plain() == 1  # calling it runs it here
    assert plain.__name__ == "plain"
    assert set(recording_broker.get_all_tasks()) >= {plain.task_name, "custom.name", "kw.name"}
    assert recording_broker.find_task("custom.name") is named
    assert recording_broker.find_task("missing") is None
    assert repr(named) == "AsyncTaskiqDecoratedTask('custom.name')"


def test_registering_a_name_again_replaces_it_with_a_warning(recording_broker, caplog):
    recording_broker.register_task(lambda: 1, "dup")
    second = recording_broker.register_task(lambda: 2, "dup")
    assert recording_broker.find_task("dup") is second
    assert "registered again" in caplog.text


async def test_kiq_sends_labels_id_and_arguments(recording_broker):
    @recording_broker.task(priority_hint="x")
    async def work(a: int, b: str = "") -> None: ...

    task = await work.kicker().with_labels(extra=1).with_task_id("my-id").kiq(1, b="two")
    assert task.task_id == "my-id"
    message = recording_broker.formatter.loads(recording_broker.queue.get_nowait())
    assert message == TaskiqMessage(
        "my-id", work.task_name, {"priority_hint": "x", "extra": 1}, [1], {"b": "two"}
    )


async def test_with_broker_sends_through_another_broker(recording_broker, make_recording_broker):
    other = make_recording_broker()

    @recording_broker.task
    async def work() -> None: ...

    await work.kicker().with_broker(other).kiq()
    assert recording_broker.queue.empty()
    assert other.queue.qsize() == 1


async def test_send_middlewares_change_the_message_in_order(recording_broker):
    seen: list[str] = []

    class Stamp(TaskiqMiddleware):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        async def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
            message.labels.setdefault("stamps", []).append(self.name)
            return message

        def post_send(self, message: TaskiqMessage) -> None:
            seen.append(self.name)

    recording_broker.with_middlewares(Stamp("a"), Stamp("b"))

    @recording_broker.task
    async def work() -> None: ...

    await work.kiq()
    message = recording_broker.formatter.loads(recording_broker.queue.get_nowait())
    assert message.labels["stamps"] == ["a", "b"]
    assert seen == ["a", "b"]
    with pytest.raises(TypeError, match="not a TaskiqMiddleware"):
        recording_broker.add_middlewares(object())


async def test_zero_delay_and_priority_ask_for_nothing(recording_broker):
    @recording_broker.task
    async def work() -> None: ...

    await work.kicker().with_labels(delay=0, priority=0).kiq()
    assert recording_broker.queue.qsize() == 1


@pytest.mark.parametrize("label", ["delay", "priority"])
async def test_labels_the_broker_cannot_honour_fail_at_kiq(recording_broker, label):
    @recording_broker.task
    async def work() -> None: ...

    with pytest.raises(UnsupportedCapabilityError, match=label):
        await work.kicker().with_labels(**{label: 1}).kiq()
    assert recording_broker.queue.empty()


async def test_broker_failures_become_send_task_errors(recording_broker):
    async def broken_kick(message: BrokerMessage) -> None:
        raise ConnectionError("peer gone")

    recording_broker.kick = broken_kick

    @recording_broker.task
    async def work() -> None: ...

    with pytest.raises(SendTaskError, match="peer gone"):
        await work.kiq()


async def test_unencodable_argument_raises_serialization_error(recording_broker):
    @recording_broker.task
    async def work(x: Any) -> None: ...

    with pytest.raises(SerializationError):
        await work.kiq(object())


async def test_builders_return_the_broker(recording_broker):
    serializer = MSGPackSerializer()
    ids = iter(["id-1"])
    assert recording_broker.with_serializer(serializer) is recording_broker
    assert recording_broker.with_id_generator(lambda: next(ids)) is recording_broker

    @recording_broker.task
    async def work(x: bytes) -> None: ...

    task = await work.kiq(b"\xff")
    assert task.task_id == "id-1"
    message = recording_broker.formatter.loads(recording_broker.queue.get_nowait())
    assert message.args == [b"\xff"]


async def test_events_fire_per_side_in_order_and_shutdown_is_idempotent(recording_broker):
    fired: list[str] = []

    @recording_broker.on_event(TaskiqEvents.CLIENT_STARTUP, TaskiqEvents.CLIENT_SHUTDOWN)
    async def client(state: Any) -> None:
        fired.append("client")

    def worker(state: Any) -> None:
        state.ready = True
        fired.append("worker")

    recording_broker.with_event_handlers(TaskiqEvents.WORKER_STARTUP, worker)
    recording_broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, worker)
    await recording_broker.startup()
    await recording_broker.shutdown()
    await recording_broker.shutdown()
    assert fired == ["client", "client"]
    recording_broker.is_worker_process = True
    await recording_broker.startup()
    await recording_broker.shutdown()
    assert fired[2:] == ["worker", "worker"]
    assert recording_broker.state.ready is True


async def test_shared_broker_forwards_to_the_default_broker(recording_broker):
    @async_shared_broker.task(task_name="shared.job")
    async def job(x: int) -> int:
        return x

    async_shared_broker._default_broker = None
    with pytest.raises(SharedBrokerSendTaskError):
        await job.kiq(1)
    with pytest.raises(SharedBrokerListenError):
        async_shared_broker.listen()
    async_shared_broker.default_broker(recording_broker)
    try:
        await job.kiq(2)
        assert recording_broker.queue.qsize() == 1
        assert recording_broker.find_task("shared.job") is job
        assert "shared.job" in recording_broker.get_all_tasks()
        await async_shared_broker.kick(BrokerMessage("i", "shared.job", b"{}", {}))
        assert recording_broker.queue.qsize() == 2
    finally:
        async_shared_broker._default_broker = None
