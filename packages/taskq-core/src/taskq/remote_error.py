"""Carrying a task's exception across processes: encode it as plain data, rebuild it safely."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from taskq.exceptions import RemoteTaskError, SecurityError, TaskiqError

_PLAIN = (str, int, float, bool, type(None))


def encode_error(error: BaseException) -> dict[str, Any]:
    """Describe ``error`` as plain data: its type's qualified name, message and plain args."""
    kind = type(error)
    encoded: dict[str, Any] = {
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "message": error_text(error),
        "args": [a for a in error.args if isinstance(a, _PLAIN)],
    }
    if isinstance(error, TaskiqError):
        encoded["fields"] = {
            k: v for k, v in vars(error).items() if k != "message" and isinstance(v, _PLAIN)
        }
    return encoded


def error_text(error: BaseException) -> str:
    """``str(error)``; when its ``__str__`` raises, a text naming its type and saying so."""
    try:
        return str(error)
    except Exception as failure:  # a task's own exception class may be broken
        return f"<{type(error).__qualname__}: str() failed with {type(failure).__name__}>"


def error_line(error: BaseException) -> str:
    """``Type: message`` of ``error``, as a log line or another error names it.

    Not ``repr(error)``: some libraries' exceptions leave their message out of it (redis-py 8
    gives ``server:ResponseError`` for a ``WRONGTYPE`` answer).
    """
    text = error_text(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def decode_error(encoded: dict[str, Any]) -> BaseException:
    """Rebuild an exception from `encode_error`'s data.

    The original type is used only when it is an Exception type (never SystemExit & co.)
    whose module is already imported here (no module is imported because a payload names
    it); otherwise the result is a `RemoteTaskError` carrying the original type name and
    message.
    """
    type_name = str(encoded.get("type", "builtins.Exception"))
    message = str(encoded.get("message", ""))
    kind = _find_exception_type(type_name)
    if kind is not None:
        rebuilt = _instantiate(kind, encoded, message)
        if rebuilt is not None:
            return rebuilt
    return RemoteTaskError(f"{type_name}: {message}", type_name=type_name, text=message)


def _find_exception_type(type_name: str) -> type[Exception] | None:
    module_name, _, qualname = type_name.rpartition(".")
    found = _look_up(module_name, qualname)
    return found if _is_exception_type(found) else None


def _look_up(module_name: str, qualname: str) -> Any:
    """What ``qualname`` names in the already imported module ``module_name``, or None."""
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        # a namespace's own entries, never getattr: a module's __getattr__ may import
        # (taskq's lazy names do), and what a payload names must not run anything
        if not isinstance(found, (ModuleType, type)):
            return None
        found = vars(found).get(part)
    return found


def _is_exception_type(found: Any) -> bool:
    """Whether ``found`` is an Exception type (SystemExit & co. are never rebuilt)."""
    # a stored result must not be able to make the process that reads it exit
    return isinstance(found, type) and issubclass(found, Exception)


def _instantiate(kind: type[Exception], encoded: dict[str, Any], message: str) -> Exception | None:
    try:
        if issubclass(kind, TaskiqError):
            return kind(message, **encoded.get("fields", {}))
        return kind(*encoded.get("args", [message]))
    except Exception:
        return None


def describe_error(error: BaseException) -> dict[str, Any]:
    """Describe ``error`` as taskiq's results do (``TaskiqResult.model_dump``'s ``error``).

    Keys: ``exc_type`` (qualified name), ``exc_message`` (the args, each kept when JSON can
    carry it, else its repr), ``exc_module``, ``exc_cause`` and ``exc_context`` (described
    the same way, or None) and ``exc_suppress_context``.
    """
    return _describe(error, frozenset())


def restore_described_error(described: Mapping[str, Any]) -> BaseException:
    """Rebuild an exception from `describe_error`'s data, with its cause and context.

    As `decode_error`: only an Exception type whose module is already imported is used, any
    other type (SystemExit, say) gives a `RemoteTaskError`; a name that is not an exception
    type raises `SecurityError`.
    """
    module_name = described.get("exc_module")
    type_name = str(described["exc_type"])
    args = tuple(described.get("exc_message") or ())
    found = _look_up(module_name, type_name) if isinstance(module_name, str) else None
    full_name = f"{module_name}.{type_name}" if module_name else type_name
    if found is not None and not (isinstance(found, type) and issubclass(found, BaseException)):
        raise SecurityError(description=f"{full_name} is not an exception type")
    error = _construct(found if _is_exception_type(found) else None, args, full_name)
    for attribute in ("exc_cause", "exc_context"):
        linked = described.get(attribute)
        if isinstance(linked, BaseException) or linked is None:
            setattr(error, f"__{attribute[4:]}__", linked)
        else:
            setattr(error, f"__{attribute[4:]}__", restore_described_error(linked))
    error.__suppress_context__ = bool(described.get("exc_suppress_context", False))
    return error


def _describe(error: BaseException, path: frozenset[int]) -> dict[str, Any]:
    path = path | {id(error)}
    kind = type(error)
    context = None if error.__suppress_context__ else error.__context__
    return {
        "exc_type": kind.__qualname__,
        "exc_message": tuple(_json_or_repr(arg) for arg in error.args),
        "exc_module": kind.__module__,
        "exc_cause": _describe_linked(error.__cause__, path),
        "exc_context": _describe_linked(context, path),
        "exc_suppress_context": error.__suppress_context__,
    }


def _describe_linked(error: BaseException | None, path: frozenset[int]) -> dict[str, Any] | None:
    if error is None or id(error) in path:
        return None
    return _describe(error, path)


def _json_or_repr(value: Any) -> Any:
    try:
        json.loads(json.dumps(value))
    except Exception:
        return repr(value)
    return value


def _construct(kind: Any, args: tuple[Any, ...], full_name: str) -> BaseException:
    text = ", ".join(str(arg) for arg in args)
    if kind is not None:
        try:
            return kind(*args)  # type: ignore[no-any-return]
        except Exception:
            pass
    return RemoteTaskError(f"{full_name}: {text}", type_name=full_name, text=text)
