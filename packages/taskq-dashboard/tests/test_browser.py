"""Every page in headless Chromium: what a person sees, clicks and confirms.

One browser and one served dashboard (in-memory broker) for the module; the last tests share
a ``taskq worker`` process on Redis, with the dashboard of its broker and a scheduler, and
watch it run real tasks. Screenshots go to pytest's tmp dir.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq import ScheduledTask
from taskq.event_stores import InMemoryEventStore
from taskq.exceptions import EventStoreError
from taskq.task_events import WorkerHeartbeat, WorkerId
from taskq.testing import eventually_blocking
from taskq_dashboard import DashboardSettings
from taskq_dashboard.testing import Served, chromium_or_skip, serve
from taskq_inmemory import InMemoryBroker
from taskq_redis import RedisStreamBroker
from taskq_redis.testing import redis_prefix, redis_url, temporary_prefix
from taskq_scheduler import InMemoryScheduleSource, TaskiqScheduler, run_scheduler_task

from .conftest import GATES, XSS_ARGS, make_broker, make_dead_letters

pytestmark = pytest.mark.timeout(120)
__all__ = ["redis_prefix", "redis_url"]  # fixtures: the Redis server (skip without) and keys


@pytest.fixture(scope="module")
def broker() -> InMemoryBroker:
    return make_broker()


@pytest.fixture(scope="module")
def served(broker: InMemoryBroker) -> Iterator[Served]:
    scheduler = TaskiqScheduler(broker, [InMemoryScheduleSource()])
    settings = DashboardSettings(refresh=0.3)
    yield from serve(broker, scheduler=scheduler, settings=settings)
    for gate in GATES:
        GATES[gate] = True


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.problems = problems
    yield opened
    context.close()
    assert problems == [], "the page logged errors (a CSP violation, a script error)"


def kiq(served: Served, broker: InMemoryBroker, name: str, *args: Any) -> str:
    task = broker.find_task(name)
    assert task is not None
    return served.run(task.kiq(*args)).task_id


WAIT = 30000  # ms: a loaded machine may take long to start the worker process


def open_page(page: Any, served: Served, path: str) -> None:
    page.goto(served.url + path)
    page.wait_for_selector("body[data-ready='1']")


def shot(page: Any, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def timeline(page: Any) -> list[str]:
    """The event kinds the task page's timeline shows, in order."""
    return [badge.strip() for badge in page.locator("#timeline .badge").all_inner_texts()]


def wait_for_timeline(page: Any, kinds: list[str]) -> None:
    """Wait until the task page's timeline shows ``kinds``: each process records its events
    in batches, so the sender's ``sent`` may reach the store a flush after the worker's."""
    eventually_blocking(lambda: timeline(page) == kinds, WAIT / 1000, what=f"timeline {kinds}")


def test_overview_draws_charts_queue_workers_and_failures(
    page: Any, served: Served, broker: InMemoryBroker, tmp_path: Path
) -> None:
    open_page(page, served, "/")  # the first request starts the broker
    kiq(served, broker, "app:add", 1, 2)
    failing = kiq(served, broker, "app:fail", XSS_ARGS[0])
    page.wait_for_selector(f"#failures a:has-text('{failing}')")
    assert page.locator("svg.chart rect.bar-ok").count() == 60
    assert page.locator("#queue").inner_text().startswith("Queue memory")
    page.wait_for_selector("#queue svg.depth-chart polyline.depth-line-ready", state="attached")
    page.wait_for_selector("#workers-alive:has-text('1 / 1')")
    assert XSS_ARGS[0] in page.locator("#failures").inner_text()  # shown as text
    assert page.evaluate("window.pwned") is None
    shot(page, tmp_path, "overview")


def test_pages_update_live_without_reloading(
    page: Any, served: Served, broker: InMemoryBroker
) -> None:
    open_page(page, served, "/")
    page.evaluate("window.sameDocument = true")
    failing = kiq(served, broker, "app:fail", "live")
    page.wait_for_selector(f"#failures a:has-text('{failing}')", timeout=15000)
    assert page.evaluate("window.sameDocument") is True
    assert "on" in page.locator("#live").get_attribute("class")


def test_tasks_filter_and_detail_show_errors_as_text(
    page: Any, served: Served, broker: InMemoryBroker, tmp_path: Path
) -> None:
    open_page(page, served, "/")  # the first request starts the broker
    failing = kiq(served, broker, "app:fail", XSS_ARGS[1])
    eventually_blocking(lambda: served.run(_state(broker, failing)) == "failed")
    open_page(page, served, "/tasks")
    page.select_option("select[name=state]", "failed")
    page.click("button:has-text('Filter')")
    page.wait_for_selector("body[data-ready='1']")
    assert page.url.endswith("/tasks?state=failed")
    states = page.locator("#results tbody .badge").all_inner_texts()
    assert states
    assert set(states) == {"failed"}
    shot(page, tmp_path, "tasks")
    open_page(page, served, "/tasks")
    page.fill("input[name=since]", "2099-01-01T00:00")
    page.click("button:has-text('Filter')")
    page.wait_for_selector("#results td:has-text('nothing here')")
    assert "since=40" in page.url  # the browser's time, as Unix seconds
    assert page.locator("input[name=since]").input_value() == "2099-01-01T00:00"
    page.go_back()
    page.wait_for_selector("body[data-ready='1']")
    page.click(f"a:has-text('{failing}')")
    page.wait_for_selector("#error")
    assert f"builtins.ValueError: {XSS_ARGS[1]}" in page.locator("#error").inner_text()
    assert "raise ValueError(text)" in page.locator("#traceback").inner_text()
    assert json.dumps(XSS_ARGS[1]) in page.locator("#arguments").inner_text()  # as text
    wait_for_timeline(page, ["sent", "received", "started", "failed"])
    assert page.locator("img").count() == 0  # the <img onerror> payload is text, not an image
    assert page.evaluate("window.pwned") is None
    shot(page, tmp_path, "task-failed")


def test_search_by_id_and_a_progress_bar(
    page: Any, served: Served, broker: InMemoryBroker, tmp_path: Path
) -> None:
    GATES["browser"] = False
    running = kiq(served, broker, "app:progress", "browser")
    open_page(page, served, "/tasks")
    page.fill("input[name=id]", running)
    page.press("input[name=id]", "Enter")
    page.wait_for_selector(f"#results a:has-text('{running}')")
    page.click(f"#results a:has-text('{running}')")
    page.wait_for_selector(".progress-text:has-text('75%')")
    assert page.locator(".progress-fill").evaluate("bar => bar.style.width") == "75%"
    shot(page, tmp_path, "task-progress")
    GATES["browser"] = True
    page.wait_for_selector("#result:has-text('\"done\"')", timeout=15000)


def listed_task(page: Any, served: Served, broker: InMemoryBroker) -> tuple[str, Any]:
    """A task sent now, and its link on the task list (shown once its sent event is stored)."""
    added = kiq(served, broker, "app:add", 1, 2)
    open_page(page, served, f"/tasks?id={added}")
    link = page.locator(f"#results a:has-text('{added}')")
    link.wait_for()
    return added, link


def release_opens(page: Any, task_id: str) -> None:
    """Release the pressed button: the click opens the task's page."""
    page.mouse.up()
    page.wait_for_selector("#task-state")
    assert page.url.endswith(f"/tasks/{task_id}")


def test_a_click_held_through_live_updates_still_opens_the_link(
    page: Any, served: Served, broker: InMemoryBroker
) -> None:
    # a live update used to replace the list under the pressed button: the click never came
    added, link = listed_task(page, served, broker)
    link.hover()
    page.mouse.down()
    page.wait_for_timeout(1000)  # about three updates at this server's 0.3 s
    release_opens(page, added)


def test_a_redraw_whose_data_comes_while_a_link_is_pressed_waits_for_the_click(
    page: Any, served: Served, broker: InMemoryBroker
) -> None:
    added, link = listed_task(page, served, broker)
    held: list[Any] = []

    def hold(route: Any) -> None:
        held.append(route)

    page.route(lambda url: "/api/tasks?" in url, hold)  # the list's data, kept back
    page.evaluate("() => { redraw(); }")
    page.wait_for_timeout(200)
    assert held
    link.hover()
    page.mouse.down()
    for route in held:  # the data arrives while the link is pressed
        route.continue_()
    page.wait_for_timeout(500)
    page.unroute_all()
    release_opens(page, added)


def test_a_retried_task_shows_its_retry_in_the_timeline(
    page: Any, served: Served, broker: InMemoryBroker
) -> None:
    flaky = kiq(served, broker, "app:flaky", "browser")
    eventually_blocking(lambda: served.run(_state(broker, flaky)) == "succeeded")
    open_page(page, served, f"/tasks/{flaky}")
    assert page.locator("#retries").inner_text() == "1"
    assert "retried" in timeline(page)
    assert "retry 1 in" in page.locator("#timeline").inner_text()
    assert page.locator("#result").inner_text().count("attempt 2") == 1


def test_cancel_a_running_task_after_confirming(
    page: Any, served: Served, broker: InMemoryBroker, tmp_path: Path
) -> None:
    GATES["browser-cancel"] = False  # never opened: it runs until cancelled
    running = kiq(served, broker, "app:progress", "browser-cancel")
    eventually_blocking(lambda: served.run(_state(broker, running)) == "started")
    open_page(page, served, f"/tasks/{running}")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#cancel")
    page.wait_for_timeout(300)
    assert served.run(_state(broker, running)) == "started"  # "no" cancels nothing
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    page.wait_for_selector("#error:has-text('TaskCancelledError')", timeout=30000)
    assert "cancelled" in timeline(page)
    assert page.locator("#cancel").count() == 0
    shot(page, tmp_path, "task-cancelled")


def test_retry_a_failed_task_after_confirming_shows_arguments_as_text(
    page: Any, served: Served, broker: InMemoryBroker, tmp_path: Path
) -> None:
    open_page(page, served, "/")  # the first request starts the broker
    task = broker.find_task("app:fail")
    assert task is not None
    sending = task.kicker().with_labels(note=XSS_ARGS[1]).kiq(text=XSS_ARGS[0])
    failed = served.run(sending).task_id
    eventually_blocking(lambda: served.run(_state(broker, failed)) == "failed")
    open_page(page, served, f"/tasks/{failed}")
    page.wait_for_selector("#retry")
    assert json.dumps(XSS_ARGS[0]) in page.locator("#arguments").inner_text()
    assert json.dumps(XSS_ARGS[1]) in page.locator("#labels").inner_text()
    assert page.locator("main script, main img").count() == 0
    assert page.evaluate("window.pwned") is None
    shot(page, tmp_path, "task-retry")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#retry")
    page.wait_for_timeout(300)
    assert served.run(_state(broker, failed)) == "failed"  # "no" sends nothing
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#retry")
    page.wait_for_selector("#retried-as a")
    assert page.locator("#task-state").inner_text().strip() == "retried"
    assert page.locator("#retry").count() == 0
    again = page.locator("#retried-as a").inner_text()
    assert again != failed
    assert again in page.locator("#timeline").inner_text()
    page.click("#retried-as a")
    page.wait_for_selector(f"h1:has-text('{again}')")
    page.wait_for_selector("#error")  # the same arguments fail the same way
    assert json.dumps(XSS_ARGS[0]) in page.locator("#arguments").inner_text()
    assert page.evaluate("window.pwned") is None


def test_workers_page_shows_heartbeats(page: Any, served: Served, broker: InMemoryBroker) -> None:
    kiq(served, broker, "app:add", 5, 5)
    open_page(page, served, "/workers")
    page.wait_for_selector("td .badge.alive")
    assert "InMemoryBroker" in page.locator("table").inner_text()


def test_workers_page_flags_a_heartbeat_dated_ahead(browser: Any, tmp_path: Path) -> None:
    store = InMemoryEventStore()  # of its own: the other pages count the alive workers
    served = serve(InMemoryBroker().with_event_store(store), settings=DashboardSettings())
    context = browser.new_context()
    try:
        opened, running = context.new_page(), next(served)
        now = time.time()
        beat = WorkerHeartbeat(
            WorkerId("fast-clock", 1, 0), now + 3600, now, "B", "q", 4, 0, 0, 0, "0"
        )
        running.run(store.write([], [beat]))
        open_page(opened, running, "/workers")
        row = opened.locator("tr", has_text="fast-clock:1:0")
        row.locator(".badge.stale", has_text="clock ahead").wait_for(timeout=WAIT)
        assert "s ahead" in row.inner_text()
        assert row.locator(".badge.alive").count() == 0
        shot(opened, tmp_path, "workers-clock-ahead")
    finally:
        context.close()
        served.close()


def test_dead_letters_page_says_when_the_broker_keeps_none(page: Any, served: Served) -> None:
    open_page(page, served, "/dead-letters")
    assert "keeps no dead letters" in page.locator("main").inner_text()


class _UnreadableRates(InMemoryEventStore):
    """A store whose rates cannot be read: every live update fails, the other reads work."""

    async def rates(self, minutes: int, now: float | None = None) -> list[Any]:
        raise EventStoreError("the minute counts hold garbage")


def test_a_live_update_the_store_cannot_answer_is_shown(browser: Any) -> None:
    # the Workers page reads no rates: only the stream's failure event can say what is wrong
    broken = InMemoryBroker().with_event_store(_UnreadableRates())
    served = serve(broken, settings=DashboardSettings(refresh=0.3))
    context = browser.new_context()
    try:
        opened = context.new_page()
        open_page(opened, next(served), "/workers")
        opened.wait_for_selector("#flash .error", timeout=WAIT)
        assert "the minute counts hold garbage" in opened.locator("#flash").inner_text()
    finally:
        context.close()
        served.close()


def test_schedules_add_run_now_and_delete_ask_for_confirmation(
    page: Any, served: Served, broker: InMemoryBroker, tmp_path: Path
) -> None:
    open_page(page, served, "/schedules")
    page.select_option("select[name=task_name]", "app:add")
    page.select_option("select[name=kind]", "cron")
    page.fill("input[name=spec]", "0 6 * * 1")
    page.fill("input[name=timezone]", "Asia/Tokyo")
    page.fill("input[name=args]", "[40, 2]")
    page.once("dialog", lambda dialog: dialog.dismiss())  # a "no" changes nothing
    page.click("button:has-text('Add schedule')")
    page.wait_for_timeout(300)
    assert page.locator("tbody tr td:has-text('0 6 * * 1')").count() == 0
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Add schedule')")
    page.wait_for_selector("td:has-text('0 6 * * 1')")
    row = page.locator("tr:has(td:has-text('0 6 * * 1'))")
    assert "Asia/Tokyo" in row.inner_text()
    shot(page, tmp_path, "schedules")
    messages: list[str] = []

    def accept(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    row.locator("button:has-text('Run now')").click()
    done = page.wait_for_selector(".flash.ok:has-text('task_id')")
    assert messages == ["Run app:add now?"]
    task_id = done.inner_text().split('"task_id":"')[1].split('"')[0]
    eventually_blocking(lambda: served.run(_state(broker, task_id)) == "succeeded")
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button:has-text('Delete')").click()
    page.wait_for_selector("td:has-text('0 6 * * 1')", state="detached")


def test_schedule_arguments_are_text_not_markup(
    page: Any, served: Served, broker: InMemoryBroker, tmp_path: Path
) -> None:
    open_page(page, served, "/schedules")
    page.select_option("select[name=kind]", "interval")
    page.fill("input[name=spec]", "3600")
    page.fill("input[name=args]", __import__("json").dumps(XSS_ARGS))
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Add schedule')")
    page.wait_for_selector("td:has-text('3600 s')")
    text = page.locator("main").inner_text()
    assert all(payload.replace('"', '\\"') in text for payload in XSS_ARGS)
    assert page.locator("main script, main img").count() == 0
    assert page.evaluate("window.pwned") is None
    shot(page, tmp_path, "schedules-xss")


async def _state(broker: InMemoryBroker, task_id: str) -> str | None:
    assert broker.event_store is not None
    events = await broker.event_store.task_events(task_id)
    return events[-1].kind.value if events else None


@pytest.fixture
def redis_served(
    redis_url: str, redis_prefix: str
) -> Iterator[tuple[Served, RedisStreamBroker, RedisStreamBroker]]:
    """A dashboard of a Redis broker that keeps dead letters, and a worker that makes them."""
    client = RedisStreamBroker(redis_url, key_prefix=redis_prefix).with_event_store(
        InMemoryEventStore()
    )
    worker = RedisStreamBroker(redis_url, key_prefix=redis_prefix)
    worker.is_worker_process = True
    serving = serve(client, settings=DashboardSettings(refresh=0.3))
    served = next(serving)
    served.run(client.startup())
    served.run(worker.startup())
    yield served, client, worker
    served.run(worker.shutdown())
    served.run(client.shutdown())
    serving.close()


def test_dead_letters_replay_one_and_purge_all(
    browser: Any, redis_served: tuple[Served, RedisStreamBroker, RedisStreamBroker], tmp_path: Path
) -> None:
    served, client, worker = redis_served
    served.run(make_dead_letters(client, worker, XSS_ARGS[1], "second", "third"))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    open_page(page, served, "/dead-letters")
    assert page.locator("#dead-count").inner_text() == "3 dead letter(s)"
    table = page.locator("main table").inner_text()
    assert "rejected" in table
    assert XSS_ARGS[1].replace('"', '\\"') in table
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.pwned") is None
    shot(page, tmp_path, "dead-letters")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tbody tr").first.locator("button:has-text('Replay')").click()
    page.wait_for_selector("#dead-count:has-text('2 dead letter(s)')")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#purge-all")
    page.wait_for_timeout(300)
    assert page.locator("#dead-count").inner_text() == "2 dead letter(s)"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#purge-all")
    page.wait_for_selector("#dead-count:has-text('0 dead letter(s)')")
    context.close()


# Records each dead-letter count the page shows, holds back the answer of the next read of the
# dead letters (a live update's: the page redraws every 0.3 s) for 1.5 s, and counts the reads
# answered after it (`window.later`).
RECORD_COUNTS_AND_SLOW_ONE_READ = """() => {
  window.counts = [];
  new MutationObserver(() => {
    const count = document.getElementById("dead-count");
    if (count && window.counts[window.counts.length - 1] !== count.textContent) {
      window.counts.push(count.textContent);
    }
  }).observe(document.getElementById("page"), {childList: true, subtree: true});
  const realFetch = window.fetch;
  window.later = 0;
  window.fetch = async (url, options) => {
    const response = await realFetch(url, options);
    if (!String(url).endsWith("/api/dead-letters")) return response;
    if (window.slowed) {
      window.later += window.released ? 1 : 0;
    } else {
      window.slowed = true;
      await new Promise((resolve) => setTimeout(resolve, 1500));
      window.released = true;
    }
    return response;
  };
}"""


def test_a_live_update_read_before_an_action_never_paints_over_its_result(
    browser: Any, redis_served: tuple[Served, RedisStreamBroker, RedisStreamBroker]
) -> None:
    served, client, worker = redis_served
    served.run(make_dead_letters(client, worker, "one", "two"))
    context = browser.new_context()
    page = context.new_page()
    open_page(page, served, "/dead-letters")
    page.evaluate(RECORD_COUNTS_AND_SLOW_ONE_READ)
    page.wait_for_function("() => window.slowed === true")  # it read "2 dead letter(s)"
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tbody tr").first.locator("button:has-text('Replay')").click()
    page.wait_for_selector("#dead-count:has-text('1 dead letter(s)')")
    # the held-back read is answered, and two reads after it: its redraw is over
    page.wait_for_function("() => window.later >= 2")
    counts = page.evaluate("window.counts")
    assert counts[counts.index("1 dead letter(s)") :] == ["1 dead letter(s)"], counts
    context.close()


WORKER_APP = """
import asyncio
from pathlib import Path

from taskq import Context, TaskiqDepends
from taskq.progress import TaskProgress, TaskState
from taskq_middlewares import SimpleRetryMiddleware
from taskq_redis import RedisEventStore, RedisStreamBroker
from taskq_result_backends import RedisResultBackend

URL, PREFIX = REDIS_URL, REDIS_PREFIX
broker = (
    RedisStreamBroker(URL, key_prefix=PREFIX)
    .with_event_store(RedisEventStore(URL, prefix=PREFIX + ":events"))
    .with_result_backend(RedisResultBackend(URL, prefix=PREFIX + ":results"))
    .with_middlewares(SimpleRetryMiddleware(default_retry_count=2))
)


async def wait_for(gate: str) -> None:
    while not Path(gate).exists():  # noqa: ASYNC110 - the test opens the gate from outside
        await asyncio.sleep(0.05)


@broker.task(task_name="e2e:add_when_open")
async def add_when_open(a: int, b: int, gate: str) -> int:
    await wait_for(gate)
    return a + b


@broker.task(task_name="e2e:add")
async def add(a: int, b: int) -> int:
    return a + b


@broker.task(task_name="e2e:fail")
async def fail(text: str) -> None:
    raise ValueError(text)


@broker.task(task_name="e2e:flaky", retry_on_error=True)
async def flaky(marker: str) -> str:
    if not Path(marker).exists():  # a file: the retry may run in the other worker process
        Path(marker).touch()
        raise ConnectionError("the first attempt fails")
    return "the second attempt worked"


@broker.task(task_name="e2e:refuse")
async def refuse(text: str, context: Context = TaskiqDepends()) -> None:
    context.reject()


@broker.task(task_name="e2e:steps")
async def steps(gate: str, context: Context = TaskiqDepends()) -> str:
    for done in (1, 2, 3):
        progress = TaskProgress(TaskState.STARTED, {"done": done, "total": 4})
        await context.broker.result_backend.set_progress(context.message.task_id, progress)
        await asyncio.sleep(0.4)
    await wait_for(gate)
    return "all steps done"
"""

#: The schedule the dashboard's scheduler fires every few seconds; the worker runs its task.
EVERY_FEW_SECONDS = "e2e-every-few-seconds"


class RealWorker:
    """A ``taskq worker`` process on Redis, the dashboard of its broker and a scheduler."""

    def __init__(self, served: Served, broker: RedisStreamBroker) -> None:
        self.served = served
        self.broker = broker

    def send(self, name: str, *args: Any) -> str:
        """Send task ``name`` from the dashboard's process; its id."""
        task = self.broker.find_task(name)
        assert task is not None
        return self.served.run(task.kiq(*args)).task_id


def _app_module(directory: Path, redis_url: str, prefix: str) -> Any:
    """Write the tasks' module for the worker process and import it here as well."""
    path = directory / "dashboard_e2e_app.py"
    path.write_text(WORKER_APP.replace("REDIS_URL, REDIS_PREFIX", f"{redis_url!r}, {prefix!r}", 1))
    spec = importlib.util.spec_from_file_location("dashboard_e2e_app", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _start_worker(directory: Path) -> subprocess.Popen[bytes]:
    """Start ``taskq worker`` on the tasks' module; its errors go to ``worker.log``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(directory), os.environ.get("PYTHONPATH", "")]),
    }
    log = directory / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "taskq", "worker", "dashboard_e2e_app:broker"],
            cwd=directory,
            env=env,
            stderr=out,
        )
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)


@pytest.fixture(scope="module")
def real_worker(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealWorker]:
    """One worker process for the module, its dashboard (with a scheduler), under one prefix."""
    directory = tmp_path_factory.mktemp("e2e")
    with temporary_prefix(redis_url) as prefix:
        broker = _app_module(directory, redis_url, prefix).broker
        schedule = ScheduledTask(
            task_name="e2e:add", args=[40, 2], interval=3, schedule_id=EVERY_FEW_SECONDS
        )
        scheduler = TaskiqScheduler(broker, [InMemoryScheduleSource([schedule])])
        serving = serve(broker, scheduler=scheduler, settings=DashboardSettings(refresh=0.3))
        served = next(serving)
        served.run(broker.startup())
        served.run(broker.create_groups())  # the worker's group reads from the start
        process = _start_worker(directory)
        firing = asyncio.run_coroutine_threadsafe(run_scheduler_task(scheduler), served.loop)
        try:
            yield RealWorker(served, broker)
        finally:
            firing.cancel()
            _stop(process)
            served.run(broker.shutdown())
            serving.close()


@pytest.fixture
def real_page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def test_a_task_run_by_a_worker_process_goes_to_success_live(
    real_page: Any, real_worker: RealWorker, tmp_path: Path
) -> None:
    page, served = real_page, real_worker.served
    gate = tmp_path / "gate"
    sent = real_worker.send("e2e:add_when_open", 2, 3, str(gate))
    open_page(page, served, f"/tasks/{sent}")
    page.wait_for_selector("#task-state:has-text('started')", timeout=WAIT)
    worker = page.locator("#worker").inner_text()
    assert f":{os.getpid()}:" not in worker, "a separate process runs the task"
    assert str(gate) in page.locator("#arguments").inner_text()
    page.evaluate("window.sameDocument = true")
    gate.touch()
    page.wait_for_selector("#task-state:has-text('succeeded')", timeout=WAIT)
    assert page.evaluate("window.sameDocument") is True, "the page updated without reloading"
    wait_for_timeline(page, ["sent", "received", "started", "succeeded"])
    page.wait_for_selector("#result:has-text('5')")
    shot(page, tmp_path, "task-by-worker-process")


def test_a_worker_process_fails_retries_and_dead_letters_tasks(
    real_page: Any, real_worker: RealWorker, tmp_path: Path
) -> None:
    page, served = real_page, real_worker.served
    failing = real_worker.send("e2e:fail", "no such order")
    flaky = real_worker.send("e2e:flaky", str(tmp_path / "tried"))
    refused = real_worker.send("e2e:refuse", "refused order")
    open_page(page, served, "/tasks?state=failed")
    page.wait_for_selector(f"#results a:has-text('{failing}')", timeout=WAIT)
    shot(page, tmp_path, "tasks-failed-by-worker")
    page.click(f"#results a:has-text('{failing}')")
    page.wait_for_selector("#error:has-text('builtins.ValueError: no such order')")
    # the worker recorded the traceback with the failure: the page shows where it was raised
    shown = page.locator("#traceback").inner_text()
    assert "raise ValueError(text)" in shown
    assert "ValueError: no such order" in shown
    wait_for_timeline(page, ["sent", "received", "started", "failed"])
    open_page(page, served, f"/tasks/{flaky}")
    page.wait_for_selector("#task-state:has-text('succeeded')", timeout=WAIT)
    # the middleware records the retry once it was sent, so the rerun's events can reach the
    # store a flush before it: the page shows it when it comes
    page.wait_for_selector("#retries:text-is('1')", timeout=WAIT)
    assert "retried" in timeline(page)
    page.wait_for_selector("#result:has-text('the second attempt worked')")
    shot(page, tmp_path, "task-retried-by-worker")
    open_page(page, served, f"/tasks/{refused}")
    page.wait_for_selector("#task-state:has-text('rejected')", timeout=WAIT)
    open_page(page, served, "/dead-letters")
    row = page.locator(f"tbody tr:has(a:has-text('{refused}'))")
    row.wait_for(timeout=WAIT)
    assert "rejected" in row.inner_text()
    assert "refused order" in row.inner_text()
    shot(page, tmp_path, "dead-letters-by-worker")
    open_page(page, served, "/workers")
    page.wait_for_selector("td:has-text('RedisStreamBroker')", timeout=WAIT)
    assert page.locator("td .badge.alive").count() >= 1
    assert f":{os.getpid()}:" not in page.locator("main table").inner_text()


def test_a_long_task_on_a_worker_process_shows_its_progress(
    real_page: Any, real_worker: RealWorker, tmp_path: Path
) -> None:
    page, served = real_page, real_worker.served
    gate = tmp_path / "gate"
    running = real_worker.send("e2e:steps", str(gate))
    open_page(page, served, f"/tasks/{running}")
    page.wait_for_selector(".progress-text:has-text('75%')", timeout=WAIT)
    assert page.locator(".progress-fill").evaluate("bar => bar.style.width") == "75%"
    shot(page, tmp_path, "task-progress-by-worker")
    open_page(page, served, "/workers")
    page.wait_for_selector(f"td a:has-text('{running}')", timeout=WAIT)  # running now
    gate.touch()
    open_page(page, served, f"/tasks/{running}")
    page.wait_for_selector("#result:has-text('all steps done')", timeout=WAIT)


def test_a_schedule_fires_tasks_that_the_worker_process_runs(
    real_page: Any, real_worker: RealWorker, tmp_path: Path
) -> None:
    page, served = real_page, real_worker.served
    open_page(page, served, "/schedules")
    assert "e2e:add" in page.locator("main table").inner_text()
    open_page(page, served, "/tasks?name=e2e:add&state=succeeded")
    page.locator("#results tbody a").first.wait_for(timeout=WAIT)
    page.locator("#results tbody a").first.click()
    page.wait_for_selector("#result:has-text('42')", timeout=WAIT)
    assert EVERY_FEW_SECONDS in page.locator("#labels").inner_text()
    assert page.locator("#task-state").inner_text().strip() == "succeeded"
    shot(page, tmp_path, "task-scheduled-by-worker")
