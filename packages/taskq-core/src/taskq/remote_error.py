"""Carrying a task's exception across processes: encode it as plain data, rebuild it safely."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

from taskq.exceptions import RemoteTaskError, TaskiqError

_PLAIN = (str, int, float, bool, type(None))


def encode_error(error: BaseException) -> dict[str, Any]:
    """Describe ``error`` as plain data: its type's qualified name, message and plain args."""
    kind = type(error)
    encoded: dict[str, Any] = {
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "message": str(error),
        "args": [a for a in error.args if isinstance(a, _PLAIN)],
    }
    if isinstance(error, TaskiqError):
        encoded["fields"] = {
            k: v for k, v in vars(error).items() if k != "message" and isinstance(v, _PLAIN)
        }
    return encoded


def decode_error(encoded: dict[str, Any]) -> BaseException:
    """Rebuild an exception from `encode_error`'s data.

    The original type is used only when its module is already imported here (no module is
    imported because a payload names it); otherwise the result is a `RemoteTaskError`
    carrying the original type name and message.
    """
    type_name = str(encoded.get("type", "builtins.Exception"))
    message = str(encoded.get("message", ""))
    kind = _find_exception_type(type_name)
    if kind is not None:
        rebuilt = _instantiate(kind, encoded, message)
        if rebuilt is not None:
            return rebuilt
    return RemoteTaskError(f"{type_name}: {message}", type_name=type_name, text=message)


def _find_exception_type(type_name: str) -> type[BaseException] | None:
    module_name, _, qualname = type_name.rpartition(".")
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        # a namespace's own entries, never getattr: a module's __getattr__ may import
        # (taskq's lazy names do), and what a payload names must not run anything
        if not isinstance(found, (ModuleType, type)):
            return None
        found = vars(found).get(part)
    if isinstance(found, type) and issubclass(found, BaseException):
        return found
    return None


def _instantiate(
    kind: type[BaseException], encoded: dict[str, Any], message: str
) -> BaseException | None:
    try:
        if issubclass(kind, TaskiqError):
            return kind(message, **encoded.get("fields", {}))
        return kind(*encoded.get("args", [message]))
    except Exception:
        return None
