"""Benchmark the dashboard's API and first page render against 1,000,000 events (SQLite, Redis).

For each store: fill it as ``bench/events.py`` does (``--events`` events, default 1,000,000:
tasks of 4 events, 1 in 20 failed, 8 workers with heartbeats), then measure

1. api: the dashboard app in this process (``httpx.ASGITransport``, no network) answering the
   task list (first page, ``state=failed``, ``name=...``, and the page after the first), a
   task's detail and the overview; p50, p95 and worst of ``--runs`` requests each;
2. render: headless Chromium (the system one, ``TASKQ_CHROMIUM``, default
   ``/usr/bin/chromium``) opening the overview page of the dashboard served by uvicorn, until
   the page is drawn from the API; the first (cold) and the median of 5 more.

The targets are a p95 of 100 ms for each API response and 1 s for the overview's render. The
SQLite file lives in a temporary directory; the Redis keys under a fresh prefix on
``TASKQ_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), deleted after. Run from the
repository root:

    python bench/dashboard.py                   # SQLite and Redis, 1,000,000 events each
    python bench/dashboard.py --quick           # 50,000 events (smoke run)
    python bench/dashboard.py --stores sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

# bench/redis.py would shadow the redis package: this directory is not an import root here.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import httpx  # noqa: E402

from taskq.event_stores import open_event_store  # noqa: E402
from taskq_dashboard import create_app  # noqa: E402
from taskq_dashboard.testing import CHROMIUM, Served  # noqa: E402
from taskq_inmemory import InMemoryBroker  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_events", HERE / "events.py")
assert _spec is not None
assert _spec.loader is not None
bench_events = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_events)  # the same fill as bench/events.py

URL = os.environ.get("TASKQ_REDIS_URL") or "redis://127.0.0.1:6379/0"
RENDERS = 5


def show(label: str, times: list[float]) -> None:
    ordered = sorted(times)
    p95 = ordered[max(int(len(ordered) * 0.95) - 1, 0)] * 1000
    print(
        f"  {label:<24} p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95:7.1f} ms"
        f"   worst {ordered[-1] * 1000:7.1f} ms   ({len(ordered)} runs)"
    )


async def api_times(app: Any, runs: int) -> None:
    """Time each endpoint ``runs`` times through the app, in this process."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as client:
        first = (await client.get("/api/tasks")).json()
        task_id = first["tasks"][0]["task_id"]
        paths = {
            "tasks (first page)": "/api/tasks",
            "tasks state=failed": "/api/tasks?state=failed",
            "tasks name=...": "/api/tasks?name=bench:task3",
            "tasks (second page)": f"/api/tasks?cursor={first['cursor']}",
            "task detail": f"/api/tasks/{task_id}",
            "overview": "/api/overview",
        }
        for label, path in paths.items():
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                response = await client.get(path)
                times.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
            show(label, times)


def render_times(app: Any) -> None:
    """Open the overview in headless Chromium until it is drawn; cold, then warm runs."""
    if not Path(CHROMIUM).exists():
        print(f"  render: skipped (no browser at {CHROMIUM})")
        return
    from playwright.sync_api import sync_playwright

    served = Served(app)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            times = []
            for _ in range(RENDERS + 1):
                page = browser.new_page()
                started = time.perf_counter()
                page.goto(served.url + "/")
                page.wait_for_selector("body[data-ready='1']")
                times.append(time.perf_counter() - started)
                page.close()
            browser.close()
    finally:
        served.stop()
    print(f"  {'render overview (cold)':<24} {times[0] * 1000:7.1f} ms")
    show("render overview (warm)", times[1:])


def bench(store_name: str, events: int, runs: int, directory: Path) -> None:
    retention = f"max_events={events * 2}&max_age=86400"
    prefix = f"taskq-bench-{uuid.uuid4().hex}"
    if store_name == "sqlite":
        url = f"sqlite://{directory / 'events.sqlite3'}?{retention}"
    else:
        url = f"{URL}?prefix={prefix}&{retention}"
    try:
        store = open_event_store(url)
        rate = asyncio.run(bench_events._fill(store, events))
        print(f"{store_name}: {events:,} events written at {rate:,.0f} events/s")
        asyncio.run(_api(url, runs))
        render_times(create_app(InMemoryBroker(), event_store=open_event_store(url)))
    finally:
        if store_name == "redis":
            from taskq_redis.testing import delete_keys

            delete_keys(URL, prefix)


async def _api(url: str, runs: int) -> None:
    store = open_event_store(url)
    app = create_app(InMemoryBroker(), event_store=store)
    try:
        await api_times(app, runs)
    finally:
        await store.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50,000 events")
    parser.add_argument("--runs", type=int, default=50, help="requests per endpoint")
    parser.add_argument("--stores", nargs="+", default=["sqlite", "redis"])
    options = parser.parse_args()
    events = 50_000 if options.quick else options.events
    for store_name in options.stores:
        with tempfile.TemporaryDirectory() as directory:
            bench(store_name, events, options.runs, Path(directory))


if __name__ == "__main__":
    main()
