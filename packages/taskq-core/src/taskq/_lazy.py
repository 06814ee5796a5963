"""Names `taskq` exports without importing them up front: heavy modules and sibling packages.

Core's own heavy names are listed here. Sibling packages announce theirs through the
``taskq.names`` entry-point group (``SomeBroker = "their_module:SomeBroker"`` in their
``pyproject.toml``), so core resolves only what is installed and names no sibling module.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from taskq._entry_points import in_group

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

#: The entry-point group in which packages announce the names ``from taskq import ...`` finds.
ENTRY_POINT_GROUP = "taskq.names"

#: core's lazily imported names -> module
CORE_NAMES: dict[str, str] = {
    "TaskiqDepends": "taskiq_dependencies",
    "Receiver": "taskq.receiver",
    "ProgressTracker": "taskq.progress",
    "TaskProgress": "taskq.progress",
    "TaskState": "taskq.progress",
    "JSONSerializer": "taskq.serializers",
    "MSGPackSerializer": "taskq.serializers",
    "CBORSerializer": "taskq.serializers",
    "ORJSONSerializer": "taskq.serializers",
    "PickleSerializer": "taskq.serializers",
}
_RENAMED = {"TaskiqDepends": "Depends"}

#: The names this repository's packages announce -> the distribution that does. Used only to
#: say what to install when no installed package announces the name; a repository test checks
#: it against the packages' ``taskq.names`` entry points.
INSTALL_HINTS: dict[str, str] = {
    "InMemoryBroker": "taskq-inmemory",
    "InmemoryResultBackend": "taskq-inmemory",
    "ZeroMQBroker": "taskq-zmq",
    "RedisStreamBroker": "taskq-redis",
    "AmqpBroker": "taskq-amqp",
    "SQLiteResultBackend": "taskq-result-backends",
    "RedisResultBackend": "taskq-result-backends",
    "SimpleRetryMiddleware": "taskq-middlewares",
    "SmartRetryMiddleware": "taskq-middlewares",
    "PrometheusMiddleware": "taskq-middlewares",
    "TaskiqScheduler": "taskq-scheduler",
    "LabelScheduleSource": "taskq-scheduler",
    "run_scheduler_task": "taskq-scheduler",
}


@functools.cache
def announced() -> dict[str, EntryPoint]:
    """The names installed packages announce in `ENTRY_POINT_GROUP` (the first one wins)."""
    names: dict[str, EntryPoint] = {}
    for entry_point in in_group(ENTRY_POINT_GROUP):
        names.setdefault(entry_point.name, entry_point)
    return names


def is_lazy(name: str) -> bool:
    """Whether ``name`` is one `load` resolves (or explains how to install)."""
    return name in CORE_NAMES or name in announced() or name in INSTALL_HINTS


def load(name: str) -> Any:
    """Import and return the lazily exported ``name``; the ImportError names what to install."""
    if name in CORE_NAMES:
        module = importlib.import_module(CORE_NAMES[name])
        return getattr(module, _RENAMED.get(name, name))
    entry_point = announced().get(name)
    if entry_point is not None:
        try:
            return entry_point.load()
        except ModuleNotFoundError as exc:
            # metadata left behind by a package whose modules are gone
            if exc.name != entry_point.module.partition(".")[0]:
                raise
    distribution = INSTALL_HINTS.get(name)
    if distribution is None:
        raise AttributeError(f"module 'taskq' has no attribute {name!r}")
    raise ImportError(
        f"{name} comes from {distribution}, which is not installed: pip install {distribution}",
        name=name,
    )


def module_getattr(module: str, names: tuple[str, ...]) -> Callable[[str], Any]:
    """Return a module-level ``__getattr__`` resolving ``names`` with `load`.

    The modules that keep taskiq's import paths use it for names of sibling packages.
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            return load(name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


def import_on_access(
    namespace: dict[str, Any], defined_in: Mapping[str, str]
) -> Callable[[str], Any]:
    """Return a module-level ``__getattr__`` importing each name of ``defined_in`` on first access.

    ``defined_in`` maps each name to the module defining it (a name that is its module's last
    part, ``converters`` for ``taskq.cli.converters``, is the module itself); ``namespace`` is
    the module's ``globals()``, where each name is kept once imported.
    """

    def __getattr__(name: str) -> Any:
        module_name = defined_in.get(name)
        if module_name is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        module = importlib.import_module(module_name)
        value = module if module_name.endswith(f".{name}") else getattr(module, name)
        namespace[name] = value  # later accesses skip this function
        return value

    return __getattr__
