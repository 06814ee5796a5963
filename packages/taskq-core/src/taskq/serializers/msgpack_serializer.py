"""taskiq's ``serializers.msgpack_serializer`` path: `MSGPackSerializer`."""

from taskq.serializers.msgpack import MSGPackSerializer

__all__ = ["MSGPackSerializer"]
