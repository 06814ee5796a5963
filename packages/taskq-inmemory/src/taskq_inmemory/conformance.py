"""The in-memory implementations as the conformance suite tests them.

``pytest --pyargs taskq_conformance --taskq-broker taskq_inmemory.conformance:make_broker
--taskq-result-backend taskq_inmemory.conformance:make_result_backend``
"""

from __future__ import annotations

from typing import Any

from taskq_inmemory.broker import InMemoryBroker
from taskq_inmemory.result_backend import InmemoryResultBackend


def make_broker() -> InMemoryBroker:
    """A broker with the default settings."""
    return InMemoryBroker()


def make_result_backend() -> InmemoryResultBackend[Any]:
    """A backend without a result limit (the default keeps 100; the suite writes 1,000 at once)."""
    return InmemoryResultBackend(max_stored_results=-1)
