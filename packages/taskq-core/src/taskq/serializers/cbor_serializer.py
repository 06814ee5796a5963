"""taskiq's ``serializers.cbor_serializer`` path: `CBORSerializer`."""

from taskq.serializers.cbor import CBORSerializer

__all__ = ["CBORSerializer"]
