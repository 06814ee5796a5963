"""``taskq worker`` running the ZeroMQ broker with settings an operator got wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from taskq.cli.worker_process import EXIT_REFUSED

HERE = Path(__file__).resolve().parent


def taskq_worker(address: str, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "taskq.cli", "worker", "cli_app:broker"]
    return subprocess.run(
        [*command, "--app-dir", str(HERE), *options],
        env={**os.environ, "TASKQ_TEST_ZMQ_ADDRESS": address},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_public_address_without_curve_stops_taskq_worker_instead_of_restarting_it(address):
    port = address.rsplit(":", 1)[1]
    finished = taskq_worker(f"tcp://0.0.0.0:{port}", "--workers", "2")
    output = finished.stdout + finished.stderr
    assert finished.returncode == EXIT_REFUSED, output
    refusals = [line for line in output.splitlines() if "refusing to bind" in line]
    assert 1 <= len(refusals) <= 2, output  # once per worker process, never again
    assert "restarting it" not in output
    assert "refused its settings" in output
    assert "Traceback" not in output
