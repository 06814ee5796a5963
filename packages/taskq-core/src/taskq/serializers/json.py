"""The default serializer: JSON from the standard library, UTF-8 encoded."""

from __future__ import annotations

import json
from typing import Any

from taskq.abc.serializer import TaskiqSerializer
from taskq.exceptions import SerializationError
from taskq.serializers._plain import to_plain


class JSONSerializer(TaskiqSerializer):
    """Encodes values as compact UTF-8 JSON.

    Tuples become lists; datetimes, UUIDs, decimals, enums, dataclasses and pydantic models
    become their JSON forms (the worker casts them back to the task's annotated types).
    """

    def __init__(self) -> None:
        """Create the serializer."""
        self._encoder = json.JSONEncoder(
            ensure_ascii=False,
            separators=(",", ":"),
            default=to_plain,
            check_circular=False,  # a cycle still fails: RecursionError, reported below
        )
        self._decode = json.JSONDecoder().decode

    def dumpb(self, value: Any) -> bytes:
        """Encode ``value`` as JSON bytes."""
        try:
            return self._encoder.encode(value).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(f"cannot encode as JSON: {exc}") from exc

    def loadb(self, value: bytes) -> Any:
        """Decode JSON bytes."""
        try:
            return self._decode(value.decode())
        except (UnicodeDecodeError, ValueError) as exc:
            raise SerializationError(f"not valid UTF-8 JSON: {exc}") from exc
