"""The contracts implementations fulfil: brokers, result backends, middlewares, and the rest."""

from taskq.abc.broker import AsyncBroker
from taskq.abc.formatter import TaskiqFormatter
from taskq.abc.middleware import TaskiqMiddleware
from taskq.abc.result_backend import AsyncResultBackend
from taskq.abc.schedule_source import ScheduleSource
from taskq.abc.serializer import TaskiqSerializer

__all__ = [
    "AsyncBroker",
    "AsyncResultBackend",
    "ScheduleSource",
    "TaskiqFormatter",
    "TaskiqMiddleware",
    "TaskiqSerializer",
]
