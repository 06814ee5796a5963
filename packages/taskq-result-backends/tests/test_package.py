"""The package surface: lazy names, a helpful error without redis, the conformance factories."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import taskq
import taskq_result_backends
from taskq_result_backends import SQLiteResultBackend, conformance


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_taskq_resolves_the_backends_from_this_package():
    assert taskq.SQLiteResultBackend is SQLiteResultBackend
    pytest.importorskip("redis")
    from taskq_result_backends.redis import RedisResultBackend

    assert taskq.RedisResultBackend is RedisResultBackend
    assert taskq_result_backends.RedisResultBackend is RedisResultBackend


def test_importing_the_package_does_not_import_redis():
    run = run_python(
        """
        import sys
        import taskq_result_backends
        assert "redis" not in sys.modules, "redis was imported"
        """
    )
    assert run.returncode == 0, run.stderr


def test_without_redis_the_error_says_what_to_install():
    run = run_python(
        """
        import sys
        sys.modules["redis"] = None  # as if it were not installed
        from taskq_result_backends import SQLiteResultBackend
        import taskq
        for get in (
            lambda: __import__("taskq_result_backends").RedisResultBackend,
            lambda: taskq.RedisResultBackend,
        ):
            try:
                get()
            except ImportError as exc:
                print(exc)
            else:
                raise SystemExit("no ImportError")
        """
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 2
    assert all("pip install 'taskq-result-backends[redis]'" in line for line in lines)


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="NoSuchBackend"):
        taskq_result_backends.NoSuchBackend  # noqa: B018


@pytest.fixture
def at_exit(monkeypatch):
    """What the factories register to run at exit, run at the end of the test instead."""
    registered: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(
        conformance.atexit, "register", lambda f, *a, **kw: registered.append((f, a, kw))
    )
    yield registered
    for function, args, kwargs in registered:
        function(*args, **kwargs)


def test_the_sqlite_factory_shares_one_file_with_child_processes(monkeypatch, at_exit):
    monkeypatch.delenv(conformance.SQLITE_PATH_ENV, raising=False)
    first = conformance.make_sqlite_backend()
    second = conformance.make_sqlite_backend()
    assert first is not second
    assert first.path == second.path == os.environ[conformance.SQLITE_PATH_ENV]
    assert len(at_exit) == 1, "the temporary directory is removed at exit"
    child = run_python(
        "from taskq_result_backends.conformance import make_sqlite_backend\n"
        "print(make_sqlite_backend().path)\n"
    )
    assert child.stdout.strip() == first.path


def test_the_redis_factory_shares_one_prefix_with_child_processes(monkeypatch, at_exit):
    testing = pytest.importorskip("taskq_redis.testing")
    monkeypatch.delenv(conformance.REDIS_PREFIX_ENV, raising=False)
    monkeypatch.setenv(testing.URL_ENV, "redis://127.0.0.1:6390/3")
    backend = conformance.make_redis_backend()
    assert backend.url == "redis://127.0.0.1:6390/3"
    assert backend.prefix == os.environ[conformance.REDIS_PREFIX_ENV]
    assert backend.prefix.startswith("taskq-conformance-")
    assert [(f.__name__, a) for f, a, _ in at_exit] == [
        ("delete_keys", ("redis://127.0.0.1:6390/3", backend.prefix))
    ]
    child = run_python(
        "from taskq_result_backends.conformance import make_redis_backend\n"
        "print(make_redis_backend().prefix)\n"
    )
    assert child.stdout.strip() == backend.prefix
