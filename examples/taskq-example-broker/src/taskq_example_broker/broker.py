"""`AckingQueueBroker`: messages wait in a queue; a taken message is acknowledged or rejected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import ClassVar

from taskq import AckableMessage, AsyncBroker, BrokerMessage, Capability


class AckingQueueBroker(AsyncBroker):
    """An in-process broker whose messages must be acknowledged.

    Each message goes to one consumer as an `AckableMessage`. ``ack`` forgets it; ``reject``
    moves it to ``dead_letters`` so an operator can look at it. Messages taken and neither
    acknowledged nor rejected are listed in ``in_flight``.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.ACKS, Capability.REJECT, Capability.LOAD_BALANCING}
    )

    def __init__(self) -> None:
        """Create an empty broker."""
        super().__init__()
        self.queue: asyncio.Queue[BrokerMessage | None] = asyncio.Queue()
        self.in_flight: dict[str, BrokerMessage] = {}
        self.dead_letters: list[BrokerMessage] = []

    async def kick(self, message: BrokerMessage) -> None:
        """Queue a message."""
        await self.queue.put(message)

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """Hand out queued messages until shutdown."""
        while (message := await self.queue.get()) is not None:
            self.in_flight[message.task_id] = message
            yield AckableMessage(
                data=message.message,
                ack=lambda task_id=message.task_id: self._ack(task_id),
                reject=lambda task_id=message.task_id: self._reject(task_id),
            )
        self.queue.put_nowait(None)  # let every other listener stop too

    async def shutdown(self) -> None:
        """Stop the listeners, then shut down as every broker does."""
        self.queue.put_nowait(None)
        await super().shutdown()

    def _ack(self, task_id: str) -> None:
        self.in_flight.pop(task_id, None)

    def _reject(self, task_id: str) -> None:
        message = self.in_flight.pop(task_id, None)
        if message is not None:
            self.dead_letters.append(message)
