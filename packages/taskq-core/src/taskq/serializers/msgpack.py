"""MessagePack serializer (extra ``msgpack``): compact binary, keeps bytes as bytes."""

from __future__ import annotations

from typing import Any

from taskq.abc.serializer import TaskiqSerializer
from taskq.exceptions import SerializationError
from taskq.serializers._optional import require
from taskq.serializers._plain import to_plain


class MSGPackSerializer(TaskiqSerializer):
    """Encodes values with msgpack; needs ``pip install taskq-core[msgpack]``."""

    def __init__(self) -> None:
        """Create the serializer (imports msgpack)."""
        self._msgpack = require("msgpack", "msgpack")

    def dumpb(self, value: Any) -> bytes:
        """Encode ``value`` as msgpack bytes."""
        try:
            return bytes(self._msgpack.packb(value, default=to_plain, use_bin_type=True))
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(f"cannot encode as msgpack: {exc}") from exc

    def loadb(self, value: bytes) -> Any:
        """Decode msgpack bytes."""
        try:
            return self._msgpack.unpackb(value, raw=False, strict_map_key=False)
        except Exception as exc:
            raise SerializationError(f"not valid msgpack: {exc}") from exc
