"""Event stores core provides: `InMemoryEventStore` (one process)."""

from taskq.event_stores.memory import InMemoryEventStore

__all__ = ["InMemoryEventStore"]
