"""The conformance suite, run as a third party runs it, against this repo's implementations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SRC = ROOT / "examples" / "taskq-example-broker" / "src"


@pytest.mark.parametrize(
    ("targets", "expected_rows"),
    [
        (
            [
                "--taskq-broker",
                "taskq_inmemory.conformance:make_broker",
                "--taskq-result-backend",
                "taskq_inmemory.conformance:make_result_backend",
            ],
            ["broker: mandatory 11 0 0", "broker: delay 1 0 0", "result_backend: notify 1 0 0"],
        ),
        (
            ["--taskq-broker", "taskq_zmq.conformance:make_broker"],
            ["broker: mandatory 11 0 0", "broker: cross_process 1 0 0"],
        ),
        (
            ["--taskq-result-backend", "taskq_result_backends.conformance:make_sqlite_backend"],
            ["result_backend: ttl 1 0 0", "result_backend: cross_process 1 0 0"],
        ),
        (
            ["--taskq-schedule-source", "taskq_scheduler.conformance:make_memory_source"],
            ["schedule_source: mandatory 2 0 0", "schedule_source: dynamic 3 0 0"],
        ),
        (
            ["--taskq-broker", "taskq_example_broker.testing:make_broker"],
            ["broker: mandatory 11 0 0", "broker: acks 1 0 0", "broker: reject 1 0 0"],
        ),
    ],
    ids=["inmemory", "zmq", "sqlite", "schedule-memory", "example-broker"],
)
def test_suite_passes_and_prints_its_table(tmp_path, targets, expected_rows):
    # a clean run: no target or store chosen by an earlier test in this process
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_")}
    env["PYTHONPATH"] = str(EXAMPLE_SRC)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "taskq_conformance",
            *targets,
            # no cache; no Hypothesis plugin, which the suite does not use and which imports
            # Hypothesis (0.7 s of CPU per run)
            *("-p", "no:cacheprovider", "-p", "no:hypothesispytest"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "taskq conformance" in run.stdout
    rows = {" ".join(line.split()) for line in run.stdout.splitlines()}
    for row in expected_rows:
        assert row in rows, f"the table has no row {row!r} (capability passed failed skipped)"
