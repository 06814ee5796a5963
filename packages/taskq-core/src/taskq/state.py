"""`TaskiqState`: the broker's shared state container, filled by event handlers, read by tasks."""

from __future__ import annotations

import threading
from collections.abc import Iterator, MutableMapping
from typing import Any


class TaskiqState(MutableMapping[str, Any]):
    """A thread-safe mapping shared by a broker, its tasks and its middlewares.

    It is a mutable mapping (``state["db"]``, ``state.get("db")``, ``len(state)``, ``in``,
    ``update``, ``pop`` ...) whose values are also attributes (``state.db``); reading or
    deleting an attribute that is not stored raises `AttributeError`, a missing item
    `KeyError`. `keys`, `values` and `items` return lists: snapshots taken under the lock.
    """

    def __init__(self) -> None:
        """Create an empty state."""
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_lock", threading.Lock())

    def set_value(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``."""
        self[key] = value

    def get_value(self, key: str, default: Any = None) -> Any:
        """Return the value under ``key``, or ``default`` when there is none."""
        return self._values.get(key, default)

    def delete_value(self, key: str) -> None:
        """Remove ``key`` (no error when it is absent)."""
        with self._lock:
            self._values.pop(key, None)

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value under ``key``, or ``default`` when there is none."""
        return self._values.get(key, default)

    def clear(self) -> None:
        """Remove every value."""
        with self._lock:
            self._values.clear()

    # Lists rather than views: each is a consistent snapshot, safe to use while other
    # threads write, and this is what taskq documented before the state became a mapping.
    def keys(self) -> list[str]:  # type: ignore[override]
        """Return the stored keys."""
        with self._lock:
            return list(self._values)

    def values(self) -> list[Any]:  # type: ignore[override]
        """Return the stored values."""
        with self._lock:
            return list(self._values.values())

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        """Return the stored ``(key, value)`` pairs."""
        with self._lock:
            return list(self._values.items())

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            self._values[key] = value

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __getattr__(self, name: str) -> Any:
        try:  # through __dict__: an instance being copied has no _values yet
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(f"'TaskiqState' object has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"'TaskiqState' object has no attribute {name!r}") from None

    def __repr__(self) -> str:
        return f"TaskiqState({self._values!r})"
