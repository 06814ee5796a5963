"""Commands in Redis's wire protocol (RESP), for a command sent many times with one part changing.

redis-py encodes every argument of every command it sends (a dozen Python calls for an
``XADD``); a `CommandPrefix` encodes the fixed arguments of a command once, and each send
adds only its last argument.
"""

from __future__ import annotations

from collections.abc import Sequence


class CommandPrefix:
    """A command's arguments but the last, encoded once; `complete` adds a last one.

    Args:
        arguments: The command's name and arguments (bytes, ``str`` in ``encoding`` or
            ``int``), without the last one.
        encoding: How ``str`` arguments become bytes (redis-py's ``encoding`` option).
    """

    def __init__(self, arguments: Sequence[bytes | str | int], encoding: str = "utf-8") -> None:
        parts = [b"*%d\r\n" % (len(arguments) + 1)]
        for argument in arguments:
            data = _as_bytes(argument, encoding)
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.data = b"".join(parts)

    def complete(self, last: bytes) -> bytes:
        """The whole command, with ``last`` as its last argument."""
        return b"%s$%d\r\n%s\r\n" % (self.data, len(last), last)


def _as_bytes(argument: bytes | str | int, encoding: str) -> bytes:
    if isinstance(argument, bytes):
        return argument
    if isinstance(argument, str):
        return argument.encode(encoding)
    if isinstance(argument, int) and not isinstance(argument, bool):
        return b"%d" % argument
    raise TypeError(f"a Redis argument is bytes, str or int, got {type(argument).__name__}")
