"""A ZeroMQ broker, two worker processes and a client, with results read through SQLite.

Run it with ``python examples/demo.py`` after installing taskq-core, taskq-zmq and
taskq-result-backends. It starts ``taskq worker demo_app:broker --workers 2`` in the background,
sends a mix of async and sync tasks, prints each result (and which worker ran it), then stops
the workers gracefully.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from taskq.testing import free_port

HERE = Path(__file__).resolve().parent


def free_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def start_workers(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "taskq", "worker", "demo_app:broker", "--workers", "2"]
    command += ["--log-level", "WARNING"]
    return subprocess.Popen(command, cwd=HERE, env=env)


async def client() -> None:
    from demo_app import broker, divide, fibonacci, greet

    await broker.startup()
    for _ in range(600):  # kiq alone would wait for the first worker only
        if broker.connected_workers >= 2:
            break
        await asyncio.sleep(0.05)
    tasks = [await greet.kiq(name) for name in ("Ada", "Grace", "Linus", "Barbara")]
    tasks += [await fibonacci.kiq(n) for n in (10, 50, 90)]
    for task in tasks:
        result = await task.wait_result(timeout=30)
        print(result.return_value)
    failed = await (await divide.kiq(1, 0)).wait_result(timeout=30)
    print(f"divide(1, 0) failed: {type(failed.error).__name__}: {failed.error}")
    await broker.shutdown()


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        env = {
            **os.environ,
            "TASKQ_DEMO_ADDRESS": free_address(),
            "TASKQ_DEMO_DATABASE": str(Path(workdir) / "results.sqlite3"),
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }
        os.environ.update(env)
        sys.path.insert(0, str(HERE))
        workers = start_workers(env)
        try:
            asyncio.run(asyncio.wait_for(client(), 60))
        finally:
            workers.send_signal(signal.SIGTERM)
            workers.wait(timeout=30)
        print(f"workers stopped (exit status {workers.returncode})")


if __name__ == "__main__":
    main()
