"""The factory the conformance suite calls: a fresh, not started broker each time."""

from __future__ import annotations

from taskq_example_broker.broker import AckingQueueBroker


def make_broker() -> AckingQueueBroker:
    """Return a new broker for one conformance test."""
    return AckingQueueBroker()
