"""The names `taskq_redis` exports, each imported from its module on first access."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import taskq_redis


def imported_after(code: str) -> set[str]:
    """The taskq_redis modules a fresh interpreter has imported after running ``code``."""
    shown = "import sys; print(*sorted(m for m in sys.modules if m.startswith('taskq_redis')))"
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{shown}"], capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_importing_the_package_imports_none_of_its_parts() -> None:
    assert imported_after("import taskq_redis") == {"taskq_redis"}


def test_the_broker_imports_neither_the_stores_nor_the_dead_letters() -> None:
    imported = imported_after("from taskq_redis import RedisStreamBroker")
    assert "taskq_redis.broker" in imported
    unused = {"event_store", "cancellation", "limiter", "dead_letters"}
    assert imported.isdisjoint(f"taskq_redis.{name}" for name in unused)


def test_a_broker_that_does_not_listen_imports_no_consumer() -> None:
    # a client or ``taskq status`` makes the broker but never reads the queue
    imported = imported_after(
        "from taskq_redis import RedisStreamBroker\n"
        "RedisStreamBroker('redis://127.0.0.1:6379/0').dead_letters"
    )
    assert {"taskq_redis.broker", "taskq_redis.dead_letters"} <= imported
    assert "taskq_redis.consumer" not in imported


@pytest.mark.parametrize("name", taskq_redis.__all__)
def test_each_name_is_the_one_its_module_defines(name: str) -> None:
    module = importlib.import_module(taskq_redis._DEFINED_IN[name])
    assert getattr(taskq_redis, name) is getattr(module, name)
    assert name in dir(taskq_redis)


def test_an_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'RedisNothing'"):
        _ = taskq_redis.RedisNothing
