"""A third-party taskq broker, as an example: a queue with acks and a dead-letter list."""

from taskq_example_broker.broker import AckingQueueBroker

__all__ = ["AckingQueueBroker"]
