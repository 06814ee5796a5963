"""What `JSONSerializer` gives back for a value, told without encoding it, where that is certain.

A broker whose messages stay in this process can hand the worker a copy of a message instead
of its bytes (see `TaskiqFormatter.decoded_copy`), if the copy is exactly what decoding the
bytes would give. This module says when it is: for plain data that JSON keeps as it is.
"""

from __future__ import annotations

from typing import Any, Final

#: Returned by `round_trip_copy` when only encoding can tell what comes back.
UNCERTAIN: Final = object()

#: Ints beyond 64 bits go the long way: the interpreter may refuse to turn huge ones to text.
_INT_BOUND = 1 << 63
#: Containers nested deeper go the long way: the decoder has a recursion limit.
_MAX_DEPTH = 32


def round_trip_copy(value: Any, depth: int = _MAX_DEPTH) -> Any:
    """Return what ``JSONSerializer().loadb(JSONSerializer().dumpb(value))`` would, or `UNCERTAIN`.

    Certain for exactly-typed ``str`` (ASCII), ``int`` (64-bit), ``float``, ``bool``, None,
    and ``list`` and ``dict`` (ASCII ``str`` keys) of those, nested at most ``depth`` deep: the
    copy holds new containers, as decoding makes, and the same immutable leaves. Anything else
    (tuples, subclasses, non-ASCII text, values its ``default`` would convert, values it
    cannot encode) is `UNCERTAIN`: the caller encodes it, and meets any error doing so.
    """
    kind = type(value)
    if kind is str:
        return value if value.isascii() else UNCERTAIN
    if kind is int:
        return value if -_INT_BOUND < value < _INT_BOUND else UNCERTAIN
    if kind is float or kind is bool or value is None:
        return value
    if depth <= 0:
        return UNCERTAIN
    if kind is list:
        items = []
        for item in value:
            copied = round_trip_copy(item, depth - 1)
            if copied is UNCERTAIN:
                return UNCERTAIN
            items.append(copied)
        return items
    if kind is dict:
        entries = {}
        for key, item in value.items():
            copied = round_trip_copy(item, depth - 1)
            if type(key) is not str or not key.isascii() or copied is UNCERTAIN:
                return UNCERTAIN
            entries[key] = copied
        return entries
    return UNCERTAIN
