"""`PrometheusMiddleware` across real ``taskq worker`` groups, on the Redis broker.

The endpoint must keep answering while worker processes are replaced: after
``--max-tasks-per-child`` tasks, and when they are killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from taskq.testing import eventually_blocking
from taskq_middlewares.metric_files import is_alive
from taskq_redis.testing import redis_prefix, redis_url  # noqa: F401 - fixtures

pytest.importorskip("prometheus_client")
pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and file locks"),
]

APP = """
import os

from taskq_middlewares import PrometheusMiddleware
from taskq_redis import RedisStreamBroker

broker = RedisStreamBroker(
    os.environ["TEST_REDIS_URL"], key_prefix=os.environ["TEST_PREFIX"]
).with_middlewares(
    PrometheusMiddleware(
        metrics_path=os.environ["TEST_METRICS_PATH"], server_port=int(os.environ["TEST_PORT"])
    )
)


@broker.task(task_name="short")
async def short() -> int:
    return 1
"""
#: Worker processes to see replaced while scraping.
REPLACEMENTS = 4
#: Seconds between two scrapes, as a Prometheus scraping often would, only faster.
SCRAPE_EVERY_S = 0.05
WAIT = 120
SERVED = re.compile(r"Metrics served on http://127\.0\.0\.1:\d+/ \(pid (\d+)\)")
STARTED = re.compile(r"taskq\.worker: Started \(pid (\d+)\)")


@dataclass
class Scrapes:
    """What scraping the endpoint over a window saw."""

    answered: int = 0
    failed: int = 0
    received: list[float] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def app_dir(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    """A directory holding the app, importable here and by the workers it starts in it."""
    (tmp_path / "metered_app.py").write_text(textwrap.dedent(APP))
    monkeypatch.setenv("TEST_REDIS_URL", redis_url)
    monkeypatch.setenv("TEST_PREFIX", redis_prefix)
    monkeypatch.setenv("TEST_METRICS_PATH", str(tmp_path / "metrics"))
    monkeypatch.setenv("TEST_PORT", str(free_port()))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("metered_app", None)


def pids(pattern: re.Pattern[str], log: Path) -> list[int]:
    """The pids of the log's lines matching ``pattern``, in order."""
    return [int(pid) for pid in pattern.findall(log.read_text())]


def scrape_until(url: str, done: threading.Event) -> Scrapes:
    """Scrape ``url`` every `SCRAPE_EVERY_S` until ``done``; count answers and failures."""
    seen = Scrapes()
    while not done.wait(SCRAPE_EVERY_S):
        try:
            body = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            seen.failed += 1
            continue
        seen.answered += 1
        found = re.search(r'taskq_tasks_received_total\{task_name="short"\} (\S+)', body)
        seen.received.append(float(found.group(1)) if found else 0.0)
    return seen


@contextlib.contextmanager
def worker_group(app_dir: Path, *options: str) -> Iterator[Path]:
    """Run ``taskq worker`` on the app, fed short tasks, for the block; yield its log.

    After the block, the group is stopped and its metrics keepers must be gone too.
    """
    import metered_app

    log = app_dir / "worker.log"
    command = [sys.executable, "-m", "taskq.cli", "worker", "metered_app:broker", *options]
    done = threading.Event()
    with log.open("wb") as output:
        group = subprocess.Popen(command, cwd=app_dir, stdout=output, stderr=subprocess.STDOUT)
        feeder = threading.Thread(target=asyncio.run, args=(feed(metered_app, done),))
        try:
            eventually_blocking(lambda: pids(SERVED, log), WAIT, what="the metrics to be served")
            feeder.start()
            yield log
        finally:
            done.set()
            if feeder.is_alive():
                feeder.join()
            group.send_signal(signal.SIGTERM)
            try:
                group.wait(60)
            finally:
                if group.poll() is None:
                    group.kill()
                    group.wait()
    eventually_blocking(
        lambda: not any(is_alive(pid) for pid in pids(SERVED, log)),
        WAIT,
        what="the metrics keepers to exit with their group",
    )


async def feed(app: Any, done: threading.Event) -> None:
    """Send short tasks until ``done``."""
    async with app.broker:
        while not done.is_set():
            await asyncio.gather(*(app.short.kiq() for _ in range(5)))
            await asyncio.sleep(0.05)


@contextlib.contextmanager
def scraping(url: str) -> Iterator[list[Scrapes]]:
    """Scrape ``url`` in a thread during the block; the list then holds what it saw."""
    seen: list[Scrapes] = []
    done = threading.Event()
    scraper = threading.Thread(target=lambda: seen.append(scrape_until(url, done)))
    scraper.start()
    try:
        yield seen
    finally:
        done.set()
        scraper.join()


def keepers(app_dir: Path) -> list[str]:
    """The metrics keeper processes of the app's groups (their command lines)."""
    command = ["ps", "-ww", "-eo", "args"]
    listing = subprocess.run(command, capture_output=True, text=True, check=True)
    return [
        line
        for line in listing.stdout.splitlines()
        if "taskq_middlewares.metrics_keeper" in line and str(app_dir) in line
    ]


def endpoint() -> str:
    return f"http://127.0.0.1:{os.environ['TEST_PORT']}/metrics"


def check_answers(scrapes: Scrapes) -> None:
    """Every scrape answered, with totals that never went down."""
    assert scrapes.failed == 0, scrapes
    assert scrapes.answered > 0
    assert scrapes.received == sorted(scrapes.received)
    assert scrapes.received[-1] > 0


def test_the_endpoint_answers_while_the_only_worker_is_replaced(app_dir: Path) -> None:
    # before: down from the exit of each worker until its replacement had started
    options = ("--workers", "1", "--max-tasks-per-child", "20")
    with worker_group(app_dir, *options) as log, scraping(endpoint()) as seen:
        eventually_blocking(
            lambda: len(pids(STARTED, log)) > REPLACEMENTS, WAIT, what="replacements"
        )
    check_answers(seen[0])
    assert len(set(pids(SERVED, log))) == 1  # one keeper served the whole run


def test_the_endpoint_answers_while_every_worker_is_killed(app_dir: Path) -> None:
    # before: down until a restarted worker served again (restarts wait 0.5 s, 1 s, 2 s, ...)
    with worker_group(app_dir, "--workers", "2") as log:
        eventually_blocking(lambda: len(pids(STARTED, log)) == 2, WAIT, what="both workers")
        with scraping(endpoint()) as seen:
            for _ in range(REPLACEMENTS // 2):
                started = pids(STARTED, log)
                for pid in started[-2:]:
                    os.kill(pid, signal.SIGKILL)
                eventually_blocking(
                    lambda started=started: len(pids(STARTED, log)) >= len(started) + 2,
                    WAIT,
                    what="both killed workers to be replaced",
                )
            assert len(keepers(app_dir)) == 1  # workers starting at once started one keeper
    check_answers(seen[0])
    assert len(set(pids(SERVED, log))) == 1  # and it served the whole run


def test_a_killed_metrics_keeper_is_replaced(app_dir: Path) -> None:
    with worker_group(app_dir, "--workers", "2") as log:
        keeper = pids(SERVED, log)[-1]
        os.kill(keeper, signal.SIGKILL)
        eventually_blocking(
            lambda: len(pids(SERVED, log)) > 1, WAIT, what="a worker to start another keeper"
        )

        def answers() -> bool:
            try:
                return urllib.request.urlopen(endpoint(), timeout=5).status == 200
            except OSError:
                return False

        eventually_blocking(answers, WAIT, what="the endpoint to answer again")
        assert pids(SERVED, log)[-1] != keeper
