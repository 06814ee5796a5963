"""taskiq's ``serializers.json_serializer`` path: `JSONSerializer`."""

from taskq.serializers.json import JSONSerializer

__all__ = ["JSONSerializer"]
