"""Event stores core provides, and opening one from a URL (`open_event_store`).

`InMemoryEventStore` keeps events in one process; `SQLiteEventStore` shares them among the
processes of one host (the embedded default). The Redis store is in taskq-redis.
"""

from taskq.event_stores.memory import InMemoryEventStore
from taskq.event_stores.sqlite import SQLiteEventStore
from taskq.event_stores.urls import open_event_store

__all__ = ["InMemoryEventStore", "SQLiteEventStore", "open_event_store"]
