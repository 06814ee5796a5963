"""The package surface: lazy names, no redis at import, the conformance factories."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import taskq
import taskq_scheduler
from taskq_scheduler import LabelScheduleSource, TaskiqScheduler, conformance


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_taskq_resolves_the_scheduler_names() -> None:
    assert taskq.TaskiqScheduler is TaskiqScheduler
    assert taskq.LabelScheduleSource is LabelScheduleSource


def test_importing_the_package_imports_no_redis_and_starts_nothing() -> None:
    run = run_python(
        """
        import sys, threading
        import taskq_scheduler
        assert "redis" not in sys.modules, "redis was imported"
        assert threading.active_count() == 1
        """
    )
    assert run.returncode == 0, run.stderr


def test_without_redis_the_error_says_what_to_install() -> None:
    run = run_python(
        """
        import sys
        sys.modules["redis"] = None  # as if it were not installed
        import taskq_scheduler
        try:
            taskq_scheduler.RedisScheduleSource
        except ImportError as exc:
            print(exc)
        """
    )
    assert "pip install 'taskq-scheduler[redis]'" in run.stdout, run.stderr


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="NoSuchSource"):
        taskq_scheduler.NoSuchSource  # noqa: B018


def test_the_memory_factory_makes_fresh_sources() -> None:
    assert conformance.make_memory_source() is not conformance.make_memory_source()


def test_the_redis_factory_shares_one_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    testing = pytest.importorskip("taskq_redis.testing")
    registered: list[Any] = []
    monkeypatch.setattr(atexit, "register", lambda *a: registered.append(a))
    monkeypatch.delenv(conformance.REDIS_PREFIX_ENV, raising=False)
    monkeypatch.setenv(testing.URL_ENV, "redis://127.0.0.1:6390/3")
    first, second = conformance.make_redis_source(), conformance.make_redis_source()
    assert first.prefix == second.prefix == os.environ[conformance.REDIS_PREFIX_ENV]
    assert first.url == "redis://127.0.0.1:6390/3"
    assert [a[0].__name__ for a in registered] == ["delete_keys"]
    assert testing.delete_keys("redis://127.0.0.1:1/0", first.prefix) == 0
