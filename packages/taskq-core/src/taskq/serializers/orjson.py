"""orjson serializer (extra ``orjson``): the fastest JSON encoder for Python."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskq.abc.serializer import TaskiqSerializer
from taskq.exceptions import SerializationError
from taskq.serializers._optional import require
from taskq.serializers._plain import to_plain


class ORJSONSerializer(TaskiqSerializer):
    """Encodes values with orjson; needs ``pip install taskq-core[orjson]``.

    Args:
        default: Turns a value orjson does not know into one it does (raise TypeError for
            none); default: datetimes, UUIDs, models and the like become their JSON forms.
        option: orjson's ``OPT_*`` flags, combined with ``|`` (default
            ``OPT_NON_STR_KEYS``: integer keys become strings instead of failing).
    """

    def __init__(
        self, default: Callable[[Any], Any] | None = None, option: int | None = None
    ) -> None:
        self._orjson = require("orjson", "orjson")
        self._default = default or to_plain
        self._option = self._orjson.OPT_NON_STR_KEYS if option is None else option

    def dumpb(self, value: Any) -> bytes:
        """Encode ``value`` as JSON bytes."""
        try:
            return bytes(self._orjson.dumps(value, default=self._default, option=self._option))
        except TypeError as exc:
            raise SerializationError(f"cannot encode with orjson: {exc}") from exc

    def loadb(self, value: bytes) -> Any:
        """Decode JSON bytes."""
        try:
            return self._orjson.loads(value)
        except self._orjson.JSONDecodeError as exc:
            raise SerializationError(f"not valid JSON: {exc}") from exc
