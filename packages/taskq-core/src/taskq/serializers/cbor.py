"""CBOR serializer (extra ``cbor``): a standard binary format (RFC 8949)."""

from __future__ import annotations

from typing import Any

from taskq.abc.serializer import TaskiqSerializer
from taskq.exceptions import SerializationError
from taskq.serializers._optional import require
from taskq.serializers._plain import to_plain


class CBORSerializer(TaskiqSerializer):
    """Encodes values with cbor2; needs ``pip install taskq-core[cbor]``."""

    def __init__(self) -> None:
        """Create the serializer (imports cbor2)."""
        self._cbor2 = require("cbor2", "cbor")

    def dumpb(self, value: Any) -> bytes:
        """Encode ``value`` as CBOR bytes."""
        try:
            return bytes(self._cbor2.dumps(value, default=lambda enc, v: enc.encode(to_plain(v))))
        except (TypeError, ValueError, self._cbor2.CBOREncodeError) as exc:
            raise SerializationError(f"cannot encode as CBOR: {exc}") from exc

    def loadb(self, value: bytes) -> Any:
        """Decode CBOR bytes."""
        try:
            return self._cbor2.loads(value)
        except Exception as exc:
            raise SerializationError(f"not valid CBOR: {exc}") from exc
