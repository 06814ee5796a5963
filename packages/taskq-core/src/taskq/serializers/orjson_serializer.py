"""taskiq's ``serializers.orjson_serializer`` path: `ORJSONSerializer`."""

from taskq.serializers.orjson import ORJSONSerializer

__all__ = ["ORJSONSerializer"]
