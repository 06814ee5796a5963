"""taskq-zmq: a ZeroMQ broker with load balancing, backpressure and graceful hand-back."""

from taskq_zmq.broker import ZeroMQBroker

__all__ = ["ZeroMQBroker"]
