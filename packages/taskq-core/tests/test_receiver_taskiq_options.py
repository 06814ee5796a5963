"""The receiver options and labels taskiq code passes: ack_type label, jitter, startup, on_exit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from taskq import (
    AcknowledgeType,
    Context,
    InvalidLabelError,
    MessageNotAckableError,
    Receiver,
    TaskiqDepends,
    TaskiqEvents,
    TaskiqResult,
)
from taskq_inmemory import InmemoryResultBackend


def watch_saves_and_acks(broker: Any, data: bytes, events: list[str]) -> Any:
    """Record "save" and "ack" in ``events``; return the ackable message of ``data``."""
    backend = broker.result_backend

    class Watching(InmemoryResultBackend[Any]):
        async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
            events.append("save")
            await backend.set_result(task_id, result)

    broker.with_result_backend(Watching())
    message = broker.ackable(data)
    original_ack = message.ack

    async def ack() -> None:
        events.append("ack")
        await original_ack()

    message.ack = ack
    return message


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("when_received", ["ack", "run", "save"]),
        ("WHEN_EXECUTED", ["run", "ack", "save"]),
        ("AcknowledgeType.WHEN_EXECUTED", ["run", "ack", "save"]),  # from a taskiq client
        (AcknowledgeType.WHEN_SAVED, ["run", "save", "ack"]),
    ],
)
async def test_ack_type_label_overrides_the_receivers_mode(
    recording_broker, encode, label, expected
):
    events: list[str] = []

    @recording_broker.task(ack_type=label)
    async def work() -> None:
        events.append("run")

    data = encode(recording_broker, work.task_name, labels=work.labels)
    message = watch_saves_and_acks(recording_broker, data, events)
    await Receiver(recording_broker, ack_type="manual").callback(message)
    assert events == expected


async def test_manual_ack_type_label_lets_the_task_ack(recording_broker, encode):
    @recording_broker.task(ack_type="manual")
    async def acking(context: Context = TaskiqDepends()) -> None:
        assert recording_broker.settled == []  # not acked before the task says so
        await context.ack()

    data = encode(recording_broker, acking.task_name, labels=acking.labels)
    await Receiver(recording_broker).callback(recording_broker.ackable(data))
    assert recording_broker.settled == [("ack", data)]


async def test_an_invalid_ack_type_label_fails_the_task_and_the_worker_goes_on(
    recording_broker, encode
):
    @recording_broker.task
    async def work() -> None: ...

    data = encode(recording_broker, work.task_name, labels={"ack_type": "sometimes"})
    await Receiver(recording_broker).callback(recording_broker.ackable(data))
    result = await recording_broker.result_backend.get_result("t1")
    assert isinstance(result.error, InvalidLabelError)
    assert recording_broker.settled == [("reject", data)]


async def test_kiq_refuses_an_invalid_ack_type_label(recording_broker):
    @recording_broker.task(ack_type="sometimes")
    async def work() -> None: ...

    with pytest.raises(InvalidLabelError, match="ack_type"):
        await work.kiq()


async def test_context_ack_raises_for_a_message_that_cannot_be_acked(recording_broker, encode):
    @recording_broker.task
    async def acking(context: Context = TaskiqDepends()) -> str:
        assert not context.is_ackable
        with pytest.raises(MessageNotAckableError) as raised:
            await context.ack()
        assert isinstance(raised.value, RuntimeError)  # what taskiq raises
        return "checked"

    await Receiver(recording_broker).callback(encode(recording_broker, acking.task_name))
    result = await recording_broker.result_backend.get_result("t1")
    assert result.return_value == "checked"


def test_max_async_tasks_jitter_adds_up_to_the_jitter():
    limits = {
        Receiver(object(), max_async_tasks=10, max_async_tasks_jitter=3).max_async_tasks  # type: ignore[arg-type]
        for _ in range(200)
    }
    assert limits <= {10, 11, 12, 13}
    assert len(limits) > 1
    assert Receiver(object(), max_async_tasks=10).max_async_tasks == 10  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="jitter"):
        Receiver(object(), max_async_tasks_jitter=-1)  # type: ignore[arg-type]


@pytest.mark.parametrize("run_startup", [True, False])
async def test_run_startup_starts_an_unstarted_broker(recording_broker, run_startup):
    started: list[bool] = []
    recording_broker.add_event_handler(
        TaskiqEvents.CLIENT_STARTUP, lambda state: started.append(True)
    )
    recording_broker.close()
    await asyncio.wait_for(Receiver(recording_broker, run_startup=run_startup).listen(), 5)
    assert started == ([True] if run_startup else [])
    assert recording_broker.is_started is run_startup


async def test_run_startup_does_not_start_a_started_broker_again(recording_broker):
    started: list[bool] = []
    recording_broker.add_event_handler(
        TaskiqEvents.CLIENT_STARTUP, lambda state: started.append(True)
    )
    await recording_broker.startup()
    recording_broker.close()
    await asyncio.wait_for(Receiver(recording_broker).listen(), 5)
    assert started == [True]


async def test_on_exit_is_called_with_the_receiver_when_listen_ends(recording_broker, encode):
    ran: list[str] = []

    @recording_broker.task
    async def work() -> None:
        ran.append("work")

    exits: list[Receiver] = []
    receiver = Receiver(recording_broker, on_exit=exits.append)
    recording_broker.put_raw(encode(recording_broker, work.task_name))
    recording_broker.close()
    await asyncio.wait_for(receiver.listen(), 5)
    assert exits == [receiver]
    assert ran == ["work"]
