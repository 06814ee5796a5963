"""taskiq's ``brokers.zmq_broker`` path: `ZeroMQBroker`, from taskq-zmq."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq import _lazy

if TYPE_CHECKING:
    from taskq_zmq import ZeroMQBroker

__all__ = ["ZeroMQBroker"]
__getattr__ = _lazy.module_getattr(__name__, tuple(__all__))
