"""The worker engine: `Receiver` runs delivered messages through tasks and middlewares."""

from taskq.receiver.receiver import Receiver

__all__ = ["Receiver"]
