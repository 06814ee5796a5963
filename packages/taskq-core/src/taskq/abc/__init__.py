"""The contracts implementations fulfil: brokers, result backends, middlewares, and the rest.

`AsyncBroker` and `AsyncResultBackend` are importable from here too, as from taskiq's.
"""

from taskq.abc.broker import AsyncBroker
from taskq.abc.result_backend import AsyncResultBackend

__all__ = ["AsyncBroker", "AsyncResultBackend"]
