"""Serializers: JSON built in; msgpack, CBOR and orjson as extras; pickle opt-in.

Each name below is imported from its module on first access: a program that uses the JSON
serializer alone (as the default formatter does) does not import the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq._lazy import import_on_access

if TYPE_CHECKING:
    from taskq.serializers.cbor import CBORSerializer
    from taskq.serializers.json import JSONSerializer
    from taskq.serializers.msgpack import MSGPackSerializer
    from taskq.serializers.orjson import ORJSONSerializer
    from taskq.serializers.pickle import PickleSerializer

#: The public names, with the module that defines each.
_DEFINED_IN = {
    "CBORSerializer": "taskq.serializers.cbor",
    "JSONSerializer": "taskq.serializers.json",
    "MSGPackSerializer": "taskq.serializers.msgpack",
    "ORJSONSerializer": "taskq.serializers.orjson",
    "PickleSerializer": "taskq.serializers.pickle",
}

__all__ = [
    "CBORSerializer",
    "JSONSerializer",
    "MSGPackSerializer",
    "ORJSONSerializer",
    "PickleSerializer",
]


__getattr__ = import_on_access(globals(), _DEFINED_IN)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
