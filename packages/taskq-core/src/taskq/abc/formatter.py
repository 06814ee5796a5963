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

    def decoded_copy(self, message: TaskiqMessage) -> TaskiqMessage | None:
        """What ``loads(dumps(message).message)`` returns, told without encoding; None if unsure.

        A broker whose messages stay in this process hands this copy to its worker instead of
        the bytes (`AsyncBroker.kick_decoded`). It must be exactly what decoding would give,
        in new containers, and None whenever encoding could fail or change anything; a message
        with no labels, args and kwargs may come back itself (its empty containers are the
        caller's to give away). This default is never sure.
        """
        return None
