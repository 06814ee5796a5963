"""taskiq's ``brokers.shared_broker`` path: the shared broker and its ``shared_task`` decorator."""

from taskq.shared_broker import AsyncSharedBroker, async_shared_broker, shared_task

__all__ = ["AsyncSharedBroker", "async_shared_broker", "shared_task"]
