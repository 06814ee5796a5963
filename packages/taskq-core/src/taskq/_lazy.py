"""Names `taskq` exports without importing them up front: heavy modules and sibling packages."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

#: name -> (module, distribution that provides it)
LAZY_NAMES: dict[str, tuple[str, str]] = {
    "TaskiqDepends": ("taskiq_dependencies", "taskq-core"),
    "Receiver": ("taskq.receiver", "taskq-core"),
    "ProgressTracker": ("taskq.progress", "taskq-core"),
    "TaskProgress": ("taskq.progress", "taskq-core"),
    "TaskState": ("taskq.progress", "taskq-core"),
    "JSONSerializer": ("taskq.serializers", "taskq-core"),
    "MSGPackSerializer": ("taskq.serializers", "taskq-core"),
    "CBORSerializer": ("taskq.serializers", "taskq-core"),
    "ORJSONSerializer": ("taskq.serializers", "taskq-core"),
    "PickleSerializer": ("taskq.serializers", "taskq-core"),
    "InMemoryBroker": ("taskq_inmemory", "taskq-inmemory"),
    "InmemoryResultBackend": ("taskq_inmemory", "taskq-inmemory"),
    "ZeroMQBroker": ("taskq_zmq", "taskq-zmq"),
    "RedisStreamBroker": ("taskq_redis", "taskq-redis"),
    "AmqpBroker": ("taskq_amqp", "taskq-amqp"),
    "SimpleRetryMiddleware": ("taskq_middlewares", "taskq-middlewares"),
    "SmartRetryMiddleware": ("taskq_middlewares", "taskq-middlewares"),
    "PrometheusMiddleware": ("taskq_middlewares", "taskq-middlewares"),
    "TaskiqScheduler": ("taskq_scheduler", "taskq-scheduler"),
    "LabelScheduleSource": ("taskq_scheduler", "taskq-scheduler"),
    "SQLiteResultBackend": ("taskq_result_backends", "taskq-result-backends"),
    "RedisResultBackend": ("taskq_result_backends", "taskq-result-backends"),
    "run_scheduler_task": ("taskq_scheduler", "taskq-scheduler"),
}
_RENAMED = {"TaskiqDepends": "Depends"}


def load(name: str) -> Any:
    """Import and return the lazily exported ``name``; the ImportError names what to install."""
    module_name, distribution = LAZY_NAMES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.split(".")[0]:
            raise
        raise ImportError(
            f"{name} comes from {distribution}, which is not installed: pip install {distribution}"
        ) from exc
    return getattr(module, _RENAMED.get(name, name))


def module_getattr(module: str, names: tuple[str, ...]) -> Callable[[str], Any]:
    """Return a module-level ``__getattr__`` resolving ``names`` (of `LAZY_NAMES`) with `load`.

    The modules that keep taskiq's import paths use it for names of sibling packages.
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            return load(name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
