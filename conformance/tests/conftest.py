"""Shared set-up of the tests of the conformance suite: runs of pytest in a scratch directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

#: This directory: `implementations.py` is imported from here by the runs of the suite.
HERE = Path(__file__).resolve().parent

#: Where a run of the suite could pick up a target other than the one a test gives.
TARGET_VARIABLES = (
    "TASKQ_BROKER",
    "TASKQ_RESULT_BACKEND",
    "TASKQ_SCHEDULE_SOURCE",
    "TASKQ_EVENT_STORE",
)


@pytest.fixture(autouse=True)
def _clean_suite_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No target from the caller's environment; `implementations` importable by the runs."""
    for name in TARGET_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    )
