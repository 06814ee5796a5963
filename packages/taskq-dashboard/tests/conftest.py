"""Fixtures: an in-memory broker with real tasks and an event store, and a client of its app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskq import Context, TaskiqDepends
from taskq.event_stores import InMemoryEventStore
from taskq.toolkit import send_task
from taskq_dashboard import Auth, DashboardSettings, create_app
from taskq_inmemory import InMemoryBroker
from taskq_middlewares import SimpleRetryMiddleware

#: Arguments a page must show as text, never run or render.
XSS_ARGS = ["<script>window.pwned = 1</script>", '<img src=x onerror="window.pwned = 2">']


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A browser test that fails reports what each open page shows: a wait that timed out
    says only what did not appear."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    browser = getattr(item, "funcargs", {}).get("browser")
    if call.when == "call" and report.failed and browser is not None:
        shots = getattr(item, "funcargs", {}).get("tmp_path")
        report.sections.append(("open pages", describe_pages(browser, shots)))
        for context in browser.contexts:  # their live streams would hold the server's stop
            context.close()


def describe_pages(browser: Any, shots: Path | None) -> str:
    """Each open page's address and flash message, and where its screenshot went."""
    lines = []
    for number, page in enumerate(p for context in browser.contexts for p in context.pages):
        flash = page.locator("#flash")
        said = flash.inner_text() if flash.count() else "(no flash)"
        line = f"page {number}: {page.url}; flash: {said!r}"
        if shots is not None:
            page.screenshot(path=str(shots / f"failed-{number}.png"), full_page=True)
            line += f"; screenshot: {shots / f'failed-{number}.png'}"
        lines.append(line)
    return "\n".join(lines) or "no page open"


def make_broker() -> InMemoryBroker:
    """An in-memory broker recording events, with tasks that succeed, fail and report progress."""
    broker = (
        InMemoryBroker()
        .with_event_store(InMemoryEventStore())
        .with_middlewares(SimpleRetryMiddleware(default_retry_count=3))
    )
    attempts: dict[str, int] = {}

    @broker.task(task_name="app:flaky", retry_on_error=True)
    async def flaky(key: str) -> str:
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] == 1:
            raise ConnectionError("the first attempt fails")
        return f"attempt {attempts[key]}"

    @broker.task(task_name="app:add")
    async def add(a: int, b: int) -> int:
        return a + b

    @broker.task(task_name="app:fail")
    async def fail(text: str) -> None:
        raise ValueError(text)

    @broker.task(task_name="app:progress")
    async def progress(gate: str, context: Context = TaskiqDepends()) -> str:
        backend = context.broker.result_backend
        from taskq.progress import TaskProgress, TaskState

        await backend.set_progress(
            context.message.task_id, TaskProgress(TaskState.STARTED, {"done": 3, "total": 4})
        )
        while not GATES.get(gate):  # noqa: ASYNC110 - gates are opened from other threads too
            await asyncio.sleep(0.02)
        return "done"

    return broker


#: Gates the progress task waits on, by name: set one to True to let the task finish.
GATES: dict[str, bool] = {}


async def make_dead_letters(client: Any, worker: Any, *args: str) -> list[str]:
    """Send one task per argument and reject each: they become dead letters; their task ids."""
    from taskq_redis.testing import take

    ids = [(await send_task(client, "app:ingest", {}, (arg,), {})).task_id for arg in args]
    for item in await take(worker, len(args)):
        await item.reject()  # type: ignore[misc]
    assert client.event_recorder is not None
    await client.event_recorder.flush()  # the sent events are in the store
    return ids


def client_of(app: Any, **headers: str) -> httpx.AsyncClient:
    """An HTTP client calling ``app`` in this event loop."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", headers=headers
    )


async def csrf_of(client: httpx.AsyncClient, path: str = "/") -> str:
    """The CSRF token of the page at ``path`` (what the page's script sends with a POST)."""
    page = (await client.get(path)).text
    return page.split('name="csrf-token" content="')[1].split('"')[0]


@pytest.fixture
async def broker() -> AsyncIterator[InMemoryBroker]:
    made = make_broker()
    await made.startup()
    yield made
    for gate in GATES:  # let the tasks still waiting finish, so that shutdown does not wait
        GATES[gate] = True
    await made.shutdown()


@pytest.fixture
async def client(broker: InMemoryBroker) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(broker, settings=DashboardSettings(refresh=0.1), auth=Auth())
    async with client_of(app) as made:
        yield made
