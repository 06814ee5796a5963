"""taskiq's ``brokers.inmemory_broker`` path: the in-memory broker, from taskq-inmemory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq import _lazy

if TYPE_CHECKING:
    from taskq_inmemory import InMemoryBroker, InmemoryResultBackend

__all__ = ["InMemoryBroker", "InmemoryResultBackend"]
__getattr__ = _lazy.module_getattr(__name__, tuple(__all__))
