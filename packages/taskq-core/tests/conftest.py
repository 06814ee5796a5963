"""Shared test doubles: a broker whose messages record how they were settled."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from hypothesis import settings

from taskq import AckableMessage, AsyncBroker, BrokerMessage, Capability, TaskiqMessage
from taskq_inmemory import InmemoryResultBackend

# Fuzz tests (test_fuzz_*.py) use this profile: TASKQ_FUZZ_EXAMPLES inputs per property
# (3000 by default; tox.ini lowers it), and no per-example deadline (timings vary on CI).
settings.register_profile(
    "taskq-fuzz",
    max_examples=int(os.environ.get("TASKQ_FUZZ_EXAMPLES", "3000")),
    deadline=None,
)


class PlainQueueBroker(AsyncBroker):
    """Delivers plain bytes through a queue: nothing to acknowledge, no delay, no cancellations.

    As ZeroMQ's: a run over its limit waits in the receiver, and a message ends with its run.
    """

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def kick(self, message: BrokerMessage) -> None:
        self.queue.put_nowait(message.message)

    async def listen(self) -> AsyncGenerator[bytes, None]:
        while True:
            yield await self.queue.get()


class RecordingBroker(AsyncBroker):
    """A queue-backed broker yielding ackable messages that remember ack, reject and release."""

    capabilities = frozenset({Capability.ACKS, Capability.REJECT})

    def __init__(self) -> None:
        super().__init__(result_backend=InmemoryResultBackend(max_stored_results=-1))
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.settled: list[tuple[str, bytes]] = []

    async def kick(self, message: BrokerMessage) -> None:
        self.queue.put_nowait(message.message)

    def put_raw(self, data: bytes) -> None:
        self.queue.put_nowait(data)

    def close(self) -> None:
        self.queue.put_nowait(None)

    async def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        while (data := await self.queue.get()) is not None:
            yield self.ackable(data)

    def ackable(self, data: bytes) -> AckableMessage:
        async def ack() -> None:
            self.settled.append(("ack", data))

        def reject() -> None:
            self.settled.append(("reject", data))

        async def release() -> None:
            self.settled.append(("release", data))

        return AckableMessage(data=data, ack=ack, reject=reject, release=release)


@pytest.fixture
def recording_broker() -> RecordingBroker:
    return RecordingBroker()


@pytest.fixture
def make_recording_broker() -> type[RecordingBroker]:
    return RecordingBroker


def encode_message(
    broker: AsyncBroker,
    task_name: str,
    *args: Any,
    task_id: str = "t1",
    labels: dict[str, Any] | None = None,
    **kwargs: Any,
) -> bytes:
    """Encode a message for ``task_name`` as the broker's formatter would."""
    message = TaskiqMessage(task_id, task_name, labels or {}, list(args), kwargs)
    return broker.formatter.dumps(message).message


@pytest.fixture
def encode() -> Any:
    return encode_message
