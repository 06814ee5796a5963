"""orjson serializer (extra ``orjson``): the fastest JSON encoder for Python."""

from __future__ import annotations

from typing import Any

from taskq.abc.serializer import TaskiqSerializer
from taskq.exceptions import SerializationError
from taskq.serializers._optional import require
from taskq.serializers._plain import to_plain


class ORJSONSerializer(TaskiqSerializer):
    """Encodes values with orjson; needs ``pip install taskq-core[orjson]``."""

    def __init__(self) -> None:
        """Create the serializer (imports orjson)."""
        self._orjson = require("orjson", "orjson")

    def dumpb(self, value: Any) -> bytes:
        """Encode ``value`` as JSON bytes."""
        try:
            return bytes(
                self._orjson.dumps(value, default=to_plain, option=self._orjson.OPT_NON_STR_KEYS)
            )
        except TypeError as exc:
            raise SerializationError(f"cannot encode with orjson: {exc}") from exc

    def loadb(self, value: bytes) -> Any:
        """Decode JSON bytes."""
        try:
            return self._orjson.loads(value)
        except self._orjson.JSONDecodeError as exc:
            raise SerializationError(f"not valid JSON: {exc}") from exc
