"""Serializers: JSON built in; msgpack, CBOR and orjson as extras; pickle opt-in."""

from taskq.serializers.cbor import CBORSerializer
from taskq.serializers.json import JSONSerializer
from taskq.serializers.msgpack import MSGPackSerializer
from taskq.serializers.orjson import ORJSONSerializer
from taskq.serializers.pickle import PickleSerializer

__all__ = [
    "CBORSerializer",
    "JSONSerializer",
    "MSGPackSerializer",
    "ORJSONSerializer",
    "PickleSerializer",
]
