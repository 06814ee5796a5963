"""Event stores core provides, and opening one from a URL (`open_event_store`).

`InMemoryEventStore` keeps events in one process; `SQLiteEventStore` shares them among the
processes of one host (the embedded default). The Redis store is in taskq-redis. Each store's
module is imported when its name is first used, so opening a Redis store (``taskq status``)
does not import SQLite.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from taskq.event_stores.urls import open_event_store

if TYPE_CHECKING:
    from taskq.event_stores.memory import InMemoryEventStore
    from taskq.event_stores.sqlite import SQLiteEventStore

#: The module of each store this package names.
_MODULES = {
    "InMemoryEventStore": "taskq.event_stores.memory",
    "SQLiteEventStore": "taskq.event_stores.sqlite",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'taskq.event_stores' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["InMemoryEventStore", "SQLiteEventStore", "open_event_store"]
