"""MessagePack serializer (extra ``msgpack``): compact binary, keeps bytes as bytes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskq.abc.serializer import TaskiqSerializer
from taskq.exceptions import SerializationError
from taskq.serializers._optional import require
from taskq.serializers._plain import to_plain


class MSGPackSerializer(TaskiqSerializer):
    """Encodes values with msgpack; needs ``pip install taskq-core[msgpack]``.

    Timezone-aware datetimes travel as msgpack timestamps and come back as datetimes in UTC
    (the same instant), as in taskiq; naive ones become ISO strings.

    Args:
        default: Turns a value msgpack does not know into one it does (raise TypeError
            for none); default: UUIDs, models and the like become their plain forms.
        use_single_float: Encode floats as 32-bit (smaller, less precise).
        use_bin_type: Keep bytes and str apart (default True; False is msgpack's old
            format, where bytes come back as str).
        datetime: Encode aware datetimes as timestamps (default True).
    """

    def __init__(
        self,
        default: Callable[[Any], Any] | None = None,
        use_single_float: bool = False,
        use_bin_type: bool = True,
        datetime: bool = True,
    ) -> None:
        self._msgpack = require("msgpack", "msgpack")
        self._options = {
            "default": default or to_plain,
            "use_single_float": use_single_float,
            "use_bin_type": use_bin_type,
            "datetime": datetime,
        }

    def dumpb(self, value: Any) -> bytes:
        """Encode ``value`` as msgpack bytes."""
        try:
            return bytes(self._msgpack.packb(value, **self._options))
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(f"cannot encode as msgpack: {exc}") from exc

    def loadb(self, value: bytes) -> Any:
        """Decode msgpack bytes."""
        try:
            return self._msgpack.unpackb(value, raw=False, strict_map_key=False, timestamp=3)
        except Exception as exc:
            raise SerializationError(f"not valid msgpack: {exc}") from exc
