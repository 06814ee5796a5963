"""Pickle serializer: opt-in only, UNSAFE with untrusted peers (unpickling runs code)."""

from __future__ import annotations

import pickle
from typing import Any

from taskq.abc.serializer import TaskiqSerializer
from taskq.exceptions import SerializationError


class PickleSerializer(TaskiqSerializer):
    """Encodes any picklable value.

    Never a default: anyone who can put bytes on your broker can run code in your workers
    when they unpickle. Use it only when every producer is trusted.
    """

    def dumpb(self, value: Any) -> bytes:
        """Pickle ``value``."""
        try:
            return pickle.dumps(value)
        except Exception as exc:
            raise SerializationError(f"cannot pickle: {exc}") from exc

    def loadb(self, value: bytes) -> Any:
        """Unpickle bytes (trusted producers only)."""
        try:
            return pickle.loads(value)
        except Exception as exc:
            raise SerializationError(f"cannot unpickle: {exc}") from exc
