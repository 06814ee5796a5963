"""Hooks an implementation's conftest.py may implement to provide a factory it must set up first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.hookspec(firstresult=True)
def pytest_taskq_broker_factory(config: pytest.Config) -> Callable[[], Any] | None:
    """Return a zero-argument callable making fresh, not started brokers.

    Implement it in a conftest.py when a server must be started first.
    """


@pytest.hookspec(firstresult=True)
def pytest_taskq_result_backend_factory(config: pytest.Config) -> Callable[[], Any] | None:
    """Return a zero-argument callable making fresh, not started result backends."""


@pytest.hookspec(firstresult=True)
def pytest_taskq_schedule_source_factory(config: pytest.Config) -> Callable[[], Any] | None:
    """Return a zero-argument callable making fresh, not started schedule sources."""


@pytest.hookspec(firstresult=True)
def pytest_taskq_event_store_factory(config: pytest.Config) -> Callable[[], Any] | None:
    """Return a zero-argument callable making fresh, not started event stores."""


@pytest.hookspec(firstresult=True)
def pytest_taskq_limiter_factory(config: pytest.Config) -> Callable[[], Any] | None:
    """Return a zero-argument callable making fresh, not started limiters."""


@pytest.hookspec(firstresult=True)
def pytest_taskq_unique_store_factory(config: pytest.Config) -> Callable[[], Any] | None:
    """Return a zero-argument callable making fresh, not started unique key stores."""


@pytest.hookspec(firstresult=True)
def pytest_taskq_cancellation_store_factory(config: pytest.Config) -> Callable[[], Any] | None:
    """Return a zero-argument callable making fresh, not started cancellation stores."""
