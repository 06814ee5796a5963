"""Event stores core provides, and opening one from a URL (`open_event_store`).

`InMemoryEventStore` keeps events in one process; `SQLiteEventStore` shares them among the
processes of one host (the embedded default). The Redis store is in taskq-redis. Each store's
module is imported when its name is first used, so opening a Redis store (``taskq status``)
does not import SQLite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq._lazy import import_on_access
from taskq.event_stores.urls import open_event_store

if TYPE_CHECKING:
    from taskq.event_stores.memory import InMemoryEventStore
    from taskq.event_stores.sqlite import SQLiteEventStore

#: The module of each store this package names.
_MODULES = {
    "InMemoryEventStore": "taskq.event_stores.memory",
    "SQLiteEventStore": "taskq.event_stores.sqlite",
}


__getattr__ = import_on_access(globals(), _MODULES)


__all__ = ["InMemoryEventStore", "SQLiteEventStore", "open_event_store"]
