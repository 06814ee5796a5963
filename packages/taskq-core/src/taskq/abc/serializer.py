"""The serializer contract: turn Python values into bytes and back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class TaskiqSerializer(ABC):
    """Encodes values (messages, results) to bytes and decodes them back."""

    @abstractmethod
    def dumpb(self, value: Any) -> bytes:
        """Encode ``value``; raise `taskq.exceptions.SerializationError` when it cannot."""

    @abstractmethod
    def loadb(self, value: bytes) -> Any:
        """Decode bytes made by `dumpb`; raise `SerializationError` on bytes it cannot read."""
