"""`TaskiqState`: the broker's shared state container, filled by event handlers, read by tasks."""

from __future__ import annotations

import threading
from typing import Any


class TaskiqState:
    """A thread-safe key/value store shared by a broker, its tasks and its middlewares.

    Values are reachable both as ``state.get_value("db")`` and as ``state.db``.
    """

    def __init__(self) -> None:
        """Create an empty state."""
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_lock", threading.Lock())

    def set_value(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``."""
        with self._lock:
            self._values[key] = value

    def get_value(self, key: str, default: Any = None) -> Any:
        """Return the value under ``key``, or ``default`` when there is none."""
        return self._values.get(key, default)

    def delete_value(self, key: str) -> None:
        """Remove ``key`` (no error when it is absent)."""
        with self._lock:
            self._values.pop(key, None)

    def clear(self) -> None:
        """Remove every value."""
        with self._lock:
            self._values.clear()

    def keys(self) -> list[str]:
        """Return the stored keys."""
        with self._lock:
            return list(self._values)

    def values(self) -> list[Any]:
        """Return the stored values."""
        with self._lock:
            return list(self._values.values())

    def items(self) -> list[tuple[str, Any]]:
        """Return the stored ``(key, value)`` pairs."""
        with self._lock:
            return list(self._values.items())

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"the state has no value {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self.set_value(name, value)

    def __delattr__(self, name: str) -> None:
        if name not in self._values:
            raise AttributeError(f"the state has no value {name!r}")
        self.delete_value(name)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __repr__(self) -> str:
        return f"TaskiqState({self._values!r})"
