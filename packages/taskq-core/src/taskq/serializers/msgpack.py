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
        """Decode msgpack bytes.

        A map key encoded from a tuple (``{(1, 2): "a"}``) comes back a tuple: msgpack
        decodes arrays as lists, which cannot be keys, so such bytes are decoded again with
        tuples, and the arrays that are not keys turned back into lists.
        """
        unpackb = self._msgpack.unpackb
        try:
            try:
                return unpackb(value, raw=False, strict_map_key=False, timestamp=3)
            except TypeError:  # an array as a map key: unhashable as a list
                tuples = unpackb(
                    value, raw=False, strict_map_key=False, timestamp=3, use_list=False
                )
                return _lists_outside_keys(tuples)
        except Exception as exc:
            raise SerializationError(f"not valid msgpack: {exc}") from exc


def _lists_outside_keys(value: Any) -> Any:
    """``value`` decoded with tuples for arrays, with the arrays that are not map keys lists."""
    if type(value) is tuple:
        return [_lists_outside_keys(item) for item in value]
    if type(value) is dict:
        return {key: _lists_outside_keys(item) for key, item in value.items()}
    return value
