"""CBOR serializer (extra ``cbor``): a standard binary format (RFC 8949)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from taskq.abc.serializer import TaskiqSerializer
from taskq.exceptions import SerializationError
from taskq.serializers._optional import require
from taskq.serializers._plain import to_plain

#: The deepest nesting of containers cbor2's decoder takes (its ``max_depth``).
MAX_DEPTH = 400

_CONTAINERS = (list, tuple, dict, set, frozenset)


class CBORSerializer(TaskiqSerializer):
    """Encodes values with cbor2; needs ``pip install taskq-core[cbor]``.

    The options are cbor2's, with taskiq's defaults: datetimes travel as timestamps and
    come back timezone-aware, dates as datetimes.

    Args:
        datetime_as_timestamp: Encode datetimes as epoch timestamps (default True).
        timezone: The timezone of naive datetimes (default: a naive one fails).
        value_sharing: Encode a value referenced several times once (keeps cycles).
        default: ``default(encoder, value)`` encodes a value cbor2 does not know; default:
            UUIDs, models and the like become their plain forms.
        canonical: Encode canonically (sorted keys, shortest forms).
        date_as_datetime: Encode dates as datetimes at midnight (default True).
        string_referencing: Encode a string repeated in a message once (default True).
        tag_hook: ``tag_hook(decoder, tag)`` decodes the tags cbor2 does not know.
        object_hook: ``object_hook(decoder, mapping)`` rebuilds objects from maps.
    """

    def __init__(
        self,
        datetime_as_timestamp: bool = True,
        timezone: datetime.tzinfo | None = None,
        value_sharing: bool = False,
        default: Callable[[Any, Any], Any] | None = None,
        canonical: bool = False,
        date_as_datetime: bool = True,
        string_referencing: bool = True,
        tag_hook: Callable[[Any, Any], Any] | None = None,
        object_hook: Callable[[Any, dict[Any, Any]], Any] | None = None,
    ) -> None:
        self._cbor2 = require("cbor2", "cbor")
        self._dump_options = {
            "datetime_as_timestamp": datetime_as_timestamp,
            "timezone": timezone,
            "value_sharing": value_sharing,
            "default": default or _encode_plain,
            "canonical": canonical,
            "date_as_datetime": date_as_datetime,
            "string_referencing": string_referencing,
        }
        self._load_options = {"tag_hook": tag_hook, "object_hook": object_hook}

    def dumpb(self, value: Any) -> bytes:
        """Encode ``value`` as CBOR bytes.

        Containers nested deeper than the decoder takes (`MAX_DEPTH`) are refused here:
        the worker could not decode them, and the sender would wait for a result in vain.
        (Not checked with ``value_sharing``, which encodes a shared container once.)
        """
        try:
            encoded = bytes(self._cbor2.dumps(value, **self._dump_options))
        except (TypeError, ValueError, self._cbor2.CBOREncodeError) as exc:
            raise SerializationError(f"cannot encode as CBOR: {exc}") from exc
        # each level takes a byte at least: shorter bytes cannot nest too deep; shared values
        # are encoded once, so their nesting is not the value's (cycles among them are kept)
        if (
            len(encoded) > MAX_DEPTH
            and not self._dump_options["value_sharing"]
            and _nested_deeper(value, MAX_DEPTH)
        ):
            raise SerializationError(
                f"cannot encode as CBOR: containers nested more than {MAX_DEPTH} deep"
            )
        return encoded

    def loadb(self, value: bytes) -> Any:
        """Decode CBOR bytes."""
        try:
            return self._cbor2.loads(value, **self._load_options)
        except Exception as exc:
            raise SerializationError(f"not valid CBOR: {exc}") from exc


def _nested_deeper(value: Any, limit: int) -> bool:
    """Whether ``value`` holds containers nested more than ``limit`` deep (itself one)."""
    level = [value] if isinstance(value, _CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        inner: list[Any] = []
        for container in level:
            items = container.values() if isinstance(container, dict) else container
            inner.extend(item for item in items if isinstance(item, _CONTAINERS))
            if isinstance(container, dict):
                inner.extend(key for key in container if isinstance(key, _CONTAINERS))
        level = inner
    return False


def _encode_plain(encoder: Any, value: Any) -> None:
    encoder.encode(to_plain(value))
