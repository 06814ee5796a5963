"""taskq-inmemory: a broker and a result backend that live in this process."""

from taskq_inmemory.broker import InMemoryBroker
from taskq_inmemory.result_backend import InmemoryResultBackend

__all__ = ["InMemoryBroker", "InmemoryResultBackend"]
