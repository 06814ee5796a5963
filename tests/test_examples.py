"""The runnable programs under examples/ work as the README says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_quickstart_prints_the_results_of_sync_and_async_tasks():
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert run.stdout.splitlines() == [
        "add(2, 3) = 5",
        "word_count(...) = 5",
        "add(n, '7') for n in 0..4 = [7, 8, 9, 10, 11]",
        "divide(1, 0) failed: True - ZeroDivisionError float division by zero",
    ]
    assert run.stderr.count("ERROR taskq.receiver") == 1


def test_demo_runs_tasks_on_two_worker_processes_and_reads_results_from_sqlite():
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = run.stdout.splitlines()
    assert lines[0].startswith("hello Ada, from worker ")
    assert "fib(90) = 2880067194370816120" in run.stdout
    assert "divide(1, 0) failed: ZeroDivisionError: float division by zero" in lines
    assert lines[-1] == "workers stopped (exit status 0)"
    workers = {line.rsplit(" ", 1)[1] for line in lines if "from worker" in line}
    assert len(workers) == 2, "both worker processes should have run tasks"
