"""The formatter contract: turn a `TaskiqMessage` into a `BrokerMessage` and bytes back."""

from __future__ import annotations

from abc import ABC, abstractmethod

from taskq.message import BrokerMessage, TaskiqMessage


class TaskiqFormatter(ABC):
    """Converts task messages to the broker's wire form and back."""

    @abstractmethod
    def dumps(self, message: TaskiqMessage) -> BrokerMessage:
        """Encode a task message for a broker."""

    @abstractmethod
    def loads(self, message: bytes) -> TaskiqMessage:
        """Decode a broker's bytes; raise `taskq.exceptions.MessageDecodeError` on bad bytes."""
