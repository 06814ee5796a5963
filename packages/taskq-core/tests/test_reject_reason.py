"""A rejection carries its reason to a broker whose ``reject`` takes one; others keep working."""

from __future__ import annotations

from typing import Any

from taskq import AckableMessage, Context, Receiver, TaskiqDepends
from taskq.acks import AckController, takes_reason


class ReasonBroker:
    """Builds messages whose ``reject`` records the reason it was given."""

    def __init__(self) -> None:
        self.reasons: list[str | None] = []

    def ackable(self, data: bytes) -> AckableMessage:
        async def ack() -> None: ...

        async def reject(reason: str | None = None) -> None:
            self.reasons.append(reason)

        return AckableMessage(data, ack, reject)


async def test_the_controller_passes_the_reason_only_to_a_reject_that_takes_one():
    taken: list[Any] = []
    old_style = AckableMessage(b"x", lambda: None, lambda: taken.append("old"))
    await AckController(old_style).reject("ValueError: no")
    assert taken == ["old"]
    recorder = ReasonBroker()
    await AckController(recorder.ackable(b"x")).reject("ValueError: no")
    await AckController(recorder.ackable(b"y")).reject()
    assert recorder.reasons == ["ValueError: no", None]


def test_takes_reason_reads_the_signature():
    def positional(reason: str) -> None: ...

    def keyword_only(*, reason: str) -> None: ...

    assert takes_reason(positional)
    assert takes_reason(lambda *args: None)
    assert not takes_reason(lambda: None)
    assert not takes_reason(keyword_only)


async def test_the_receiver_gives_the_error_type_and_text(make_recording_broker, encode):
    broker = make_recording_broker()
    reasons = ReasonBroker()

    @broker.task(task_name="reasons:refuse")
    async def refuse(context: Context = TaskiqDepends()) -> None:
        context.reject()

    receiver = Receiver(broker)
    await receiver.callback(reasons.ackable(encode(broker, "no.such:task", task_id="u1")))
    await receiver.callback(reasons.ackable(encode(broker, "reasons:refuse", task_id="u2")))
    await receiver.callback(reasons.ackable(b"\xff not a message"))
    unknown, refused, undecodable = reasons.reasons
    assert unknown is not None
    assert unknown.startswith("UnknownTaskError: ")
    assert "no.such:task" in unknown
    assert refused == "TaskRejectedError: the task was rejected"
    assert undecodable is not None
    assert undecodable.startswith("MessageDecodeError: ")
