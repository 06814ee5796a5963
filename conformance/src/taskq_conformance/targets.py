"""Finding what to test: a ``module:attribute`` factory from options, ini, env or a hook."""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

#: kind -> (command-line option, ini key, environment variable, hook name)
KINDS: dict[str, tuple[str, str, str, str]] = {
    "broker": ("--taskq-broker", "taskq_broker", "TASKQ_BROKER", "pytest_taskq_broker_factory"),
    "result_backend": (
        "--taskq-result-backend",
        "taskq_result_backend",
        "TASKQ_RESULT_BACKEND",
        "pytest_taskq_result_backend_factory",
    ),
    "schedule_source": (
        "--taskq-schedule-source",
        "taskq_schedule_source",
        "TASKQ_SCHEDULE_SOURCE",
        "pytest_taskq_schedule_source_factory",
    ),
    "event_store": (
        "--taskq-event-store",
        "taskq_event_store",
        "TASKQ_EVENT_STORE",
        "pytest_taskq_event_store_factory",
    ),
    "limiter": (
        "--taskq-limiter",
        "taskq_limiter",
        "TASKQ_LIMITER",
        "pytest_taskq_limiter_factory",
    ),
    "unique_store": (
        "--taskq-unique-store",
        "taskq_unique_store",
        "TASKQ_UNIQUE_STORE",
        "pytest_taskq_unique_store_factory",
    ),
    "cancellation_store": (
        "--taskq-cancellation-store",
        "taskq_cancellation_store",
        "TASKQ_CANCELLATION_STORE",
        "pytest_taskq_cancellation_store_factory",
    ),
}

#: kind -> (module, name) of the class its instances must be (imported only when checking one)
CONTRACTS: dict[str, tuple[str, str]] = {
    "broker": ("taskq", "AsyncBroker"),
    "result_backend": ("taskq", "AsyncResultBackend"),
    "schedule_source": ("taskq", "ScheduleSource"),
    "event_store": ("taskq", "AsyncEventStore"),
    "limiter": ("taskq.abc.limiter", "TaskLimiter"),
    "unique_store": ("taskq.abc.unique_store", "UniqueKeyStore"),
    "cancellation_store": ("taskq", "CancellationStore"),
}

#: kind -> the capabilities an instance of it may declare (the suite has checks for each)
CAPABILITIES: dict[str, frozenset[str]] = {
    "broker": frozenset(
        {
            "acks",
            "reject",
            "redelivery",
            "delay",
            "priority",
            "load_balancing",
            "cross_process",
            "inspect",
            "cancel",
            "batch_send",
        }
    ),
    "result_backend": frozenset({"progress", "ttl", "notify", "cross_process"}),
    "schedule_source": frozenset({"dynamic", "persistent"}),
    "event_store": frozenset({"cross_process"}),
    "limiter": frozenset(),
    "unique_store": frozenset(),
    "cancellation_store": frozenset({"cross_process"}),
}

HOW_TO = (
    "taskq-conformance needs something to test. Give a factory, a zero-argument callable "
    "returning a fresh, not started instance:\n"
    "  pytest --pyargs taskq_conformance --taskq-broker mypkg.testing:make_broker\n"
    "  pytest --pyargs taskq_conformance --taskq-result-backend mypkg.testing:make_backend\n"
    "  pytest --pyargs taskq_conformance --taskq-schedule-source mypkg.testing:make_source\n"
    "  pytest --pyargs taskq_conformance --taskq-event-store mypkg.testing:make_store\n"
    "  pytest --pyargs taskq_conformance --taskq-limiter mypkg.testing:make_limiter\n"
    "  pytest --pyargs taskq_conformance --taskq-unique-store mypkg.testing:make_unique_store\n"
    "  pytest --pyargs taskq_conformance --taskq-cancellation-store mypkg.testing:make_store\n"
    "or set the ini keys taskq_broker / taskq_result_backend / taskq_schedule_source / "
    "taskq_event_store / taskq_limiter / taskq_unique_store / taskq_cancellation_store, the "
    "environment variables TASKQ_BROKER / TASKQ_RESULT_BACKEND / TASKQ_SCHEDULE_SOURCE / "
    "TASKQ_EVENT_STORE / TASKQ_LIMITER / TASKQ_UNIQUE_STORE / TASKQ_CANCELLATION_STORE, or "
    "implement the hook pytest_taskq_broker_factory(config) (and its siblings) in a conftest.py."
)


@dataclass(frozen=True)
class Target:
    """A factory to test and where it came from (``spec`` is None when a hook gave it).

    ``source`` names where it was given: an option, an ini key, a variable or the hook.
    """

    kind: str
    factory: Callable[[], Any]
    spec: str | None
    source: str


def resolve_target(config: pytest.Config, kind: str) -> Target | None:
    """Return the target of ``kind``: command line, then ini, then environment, then hook."""
    option, ini, env, hook = KINDS[kind]
    for source, spec in ((option, config.getoption(option)), (f"ini {ini}", config.getini(ini))):
        if spec:
            return Target(kind, load_factory(spec, source), spec, source)
    spec = os.environ.get(env)
    if spec:
        return Target(kind, load_factory(spec, env), spec, env)
    factory = getattr(config.hook, hook)(config=config)
    if factory is not None:
        return Target(kind, factory, None, hook)
    return None


def load_factory(spec: str, option: str) -> Callable[[], Any]:
    """Import ``module:attribute`` and return it; a one-line `pytest.UsageError` otherwise."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise pytest.UsageError(f"{option}: expected module:attribute, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise pytest.UsageError(
            f"{option}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    factory: Any = module
    for part in attribute.split("."):
        factory = getattr(factory, part, None)
    if not callable(factory):
        raise pytest.UsageError(f"{option}: {spec!r} is not a callable in {module_name!r}")
    return factory  # type: ignore[no-any-return]


async def make_instance(target: Target) -> Any:
    """Call the target's factory (sync or async) and return the fresh instance."""
    from taskq.toolkit import maybe_await  # late: the plugin imports no taskq module at load

    return await maybe_await(target.factory())


def first_instance(target: Target) -> Any:
    """Make an instance to read the target's capabilities from, checking that it is one.

    A factory that raises, or makes something else than an instance of its kind, is a
    one-line `pytest.UsageError` naming the factory: each check would fail on it anyway.
    """
    factory = repr(target.spec) if target.spec else "the hook returned"
    try:
        instance = asyncio.run(make_instance(target))
    except Exception as exc:
        raise pytest.UsageError(
            f"{target.source}: the factory {factory} raised {type(exc).__name__}: {exc}"
        ) from None
    module, name = CONTRACTS[target.kind]
    contract = getattr(importlib.import_module(module), name)
    if not isinstance(instance, contract):
        made = type(instance).__name__
        article = "an" if made[:1].lower() in "aeiou" else "a"
        raise pytest.UsageError(
            f"{target.source}: the factory {factory} made {article} {made}, not a "
            f"{target.kind.replace('_', ' ')} (a subclass of {module}.{name})"
        )
    return instance


def check_declared(target: Target, declared: frozenset[str]) -> None:
    """A one-line `pytest.UsageError` when ``declared`` holds what is no capability of the kind.

    A misspelt or misplaced capability would otherwise only skip the checks of the one meant.
    """
    unknown = sorted(declared - CAPABILITIES[target.kind])
    if unknown:
        label = target.kind.replace("_", " ")
        known = ", ".join(sorted(CAPABILITIES[target.kind])) or "none"
        raise pytest.UsageError(
            f"{target.source}: the {label} declares {', '.join(map(repr, unknown))}, which "
            f"is no capability of a {label} (those are: {known})"
        )
