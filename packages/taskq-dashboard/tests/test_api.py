"""The JSON API behind every page, on an in-memory broker running real tasks."""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote

import httpx

from taskq.event_stores import InMemoryEventStore
from taskq.exceptions import EventStoreError
from taskq.task_events import (
    MAX_TASK_ID_CHARS,
    EventKind,
    MinuteRate,
    WorkerHeartbeat,
    WorkerId,
    stored_task_id,
)
from taskq.testing import eventually
from taskq_dashboard import Auth, DashboardSettings, create_app
from taskq_inmemory import InMemoryBroker

from .conftest import GATES, XSS_ARGS, client_of, csrf_of


async def finished(client: httpx.AsyncClient, count: int) -> bool:
    tasks = (await client.get("/api/tasks")).json()["tasks"]
    return sum(t["state"] in ("succeeded", "failed") for t in tasks) >= count


async def test_overview_counts_throughput_failures_queue_and_workers(
    broker: InMemoryBroker, client: httpx.AsyncClient
) -> None:
    await broker.find_task("app:add").kiq(1, 2)  # type: ignore[union-attr]
    failing = await broker.find_task("app:fail").kiq("bad input")  # type: ignore[union-attr]
    await eventually(lambda: finished(client, 2))
    data = (await client.get("/api/overview")).json()
    assert data["throughput"][0]["succeeded"] == 1
    assert data["throughput"][0]["failed"] == 1
    assert data["throughput"][0]["failure_rate"] == 0.5
    assert len(data["minutes"]) == 60
    assert sum(m["succeeded"] for m in data["minutes"]) == 1
    assert data["queue"]["queue"] == "memory"
    assert data["queue_history"][-1]["ready"] == 0
    again = (await client.get("/api/overview")).json()["queue_history"]
    assert len(again) == len(data["queue_history"]) + 1
    assert [f["task_id"] for f in data["failures"]] == [failing.task_id]
    assert data["features"]["inspect"] is True
    assert data["features"]["dead_letters"] is False
    assert data["features"]["cancel"] is True  # the in-memory broker comes with cancellation
    await eventually(lambda: _alive(client))


async def _alive(client: httpx.AsyncClient) -> bool:
    return (await client.get("/api/overview")).json()["alive"] == 1


async def test_tasks_filter_by_name_state_worker_time_and_id(
    broker: InMemoryBroker, client: httpx.AsyncClient
) -> None:
    started = time.time()
    sent = [await broker.find_task("app:add").kiq(i, i) for i in range(3)]  # type: ignore[union-attr]
    await broker.find_task("app:fail").kiq("x")  # type: ignore[union-attr]
    await eventually(lambda: finished(client, 4))
    by_name = (await client.get("/api/tasks", params={"name": "app:add"})).json()["tasks"]
    assert sorted(t["task_id"] for t in by_name) == sorted(s.task_id for s in sent)
    failed = (await client.get("/api/tasks", params={"state": "failed"})).json()["tasks"]
    assert [t["task_name"] for t in failed] == ["app:fail"]
    worker = failed[0]["worker"]
    assert len((await client.get("/api/tasks", params={"worker": worker})).json()["tasks"]) == 4
    assert (await client.get("/api/tasks", params={"since": time.time() + 60})).json()[
        "tasks"
    ] == []
    window = {"since": started - 1, "until": time.time() + 1}
    assert len((await client.get("/api/tasks", params=window)).json()["tasks"]) == 4
    one = (await client.get("/api/tasks", params={"id": sent[1].task_id})).json()["tasks"]
    assert [t["task_id"] for t in one] == [sent[1].task_id]
    assert (await client.get("/api/tasks", params={"id": "no-such-id"})).json()["tasks"] == []


async def test_tasks_come_in_pages(broker: InMemoryBroker, client: httpx.AsyncClient) -> None:
    for i in range(5):
        await broker.find_task("app:add").kiq(i, 1)  # type: ignore[union-attr]
    await eventually(lambda: finished(client, 5))
    seen: list[str] = []
    params: dict[str, str] = {"limit": "2"}
    while True:
        page = (await client.get("/api/tasks", params=params)).json()
        assert len(page["tasks"]) <= 2
        seen += [t["task_id"] for t in page["tasks"]]
        if page["cursor"] is None:
            break
        params["cursor"] = page["cursor"]
    assert len(seen) == len(set(seen)) == 5


async def test_a_bad_filter_is_a_400_with_the_reason(client: httpx.AsyncClient) -> None:
    for params in ({"state": "sleeping"}, {"worker": "nohost"}, {"since": "yesterday"}):
        response = await client.get("/api/tasks", params=params)
        assert response.status_code == 400
        assert "bad task filter" in response.json()["error"]


async def test_task_detail_has_events_result_error_traceback_and_progress(
    broker: InMemoryBroker, client: httpx.AsyncClient
) -> None:
    ok = await broker.find_task("app:add").kiq(2, 3)  # type: ignore[union-attr]
    bad = await broker.find_task("app:fail").kiq("<b>bold</b>")  # type: ignore[union-attr]
    GATES["api"] = False
    slow = await broker.find_task("app:progress").kiq("api")  # type: ignore[union-attr]
    await eventually(lambda: finished(client, 2))
    detail = (await client.get(f"/api/tasks/{ok.task_id}")).json()
    assert [e["kind"] for e in detail["events"]] == ["sent", "received", "started", "succeeded"]
    assert detail["result"]["return_value"] == 5
    assert detail["retries"] == 0
    detail = (await client.get(f"/api/tasks/{bad.task_id}")).json()
    assert detail["result"]["error"]["type"] == "builtins.ValueError"
    assert detail["result"]["error"]["message"] == "<b>bold</b>"
    assert "raise ValueError(text)" in detail["result"]["traceback"]

    async def reports_progress() -> bool:
        data = (await client.get(f"/api/tasks/{slow.task_id}")).json()
        return data.get("progress") == {"state": "STARTED", "meta": {"done": 3, "total": 4}}

    await eventually(reports_progress)
    GATES["api"] = True
    missing = await client.get("/api/tasks/no-such-task")
    assert missing.status_code == 404


async def test_workers_show_heartbeats_and_what_they_run(
    broker: InMemoryBroker, client: httpx.AsyncClient
) -> None:
    GATES["workers"] = False
    running = await broker.find_task("app:progress").kiq("workers")  # type: ignore[union-attr]

    async def shows_running() -> list[dict[str, object]]:
        rows = (await client.get("/api/workers")).json()["workers"]
        return [r for r in rows if r["running_tasks"]]

    [row] = await eventually(shows_running)
    assert row["alive"] is True
    assert row["broker"] == "InMemoryBroker"
    assert row["running_tasks"][0]["task_id"] == running.task_id  # type: ignore[index]
    GATES["workers"] = True


async def test_stale_workers_are_flagged(broker: InMemoryBroker) -> None:
    app = create_app(broker, settings=DashboardSettings(stale_after=0.05))
    async with client_of(app) as client:
        await broker.find_task("app:add").kiq(1, 1)  # type: ignore[union-attr]
        await eventually(lambda: finished(client, 1))

        async def stale() -> bool:
            rows = (await client.get("/api/workers")).json()["workers"]
            return bool(rows) and all(not row["alive"] for row in rows)

        await eventually(stale)


async def test_a_worker_whose_heartbeat_is_dated_ahead_is_flagged_not_alive(
    broker: InMemoryBroker, client: httpx.AsyncClient
) -> None:
    host = f"fast-clock-{uuid.uuid4().hex[:6]}"
    ahead = WorkerHeartbeat(
        WorkerId(host, 1, 0), time.time() + 3600, time.time(), "B", "q", 4, 0, 0, 0, "0"
    )
    await broker.event_store.write([], [ahead])  # type: ignore[union-attr]
    rows = (await client.get("/api/workers")).json()["workers"]
    (row,) = [r for r in rows if r["worker"].startswith(host)]
    assert (row["alive"], row["clock_ahead"]) == (False, True)
    assert 3500 < -row["age"] <= 3600


async def test_cancel_a_running_task_and_the_event_is_recorded(
    broker: InMemoryBroker, client: httpx.AsyncClient
) -> None:
    GATES["cancel"] = False  # never opened: the task runs until it is cancelled
    running = await broker.find_task("app:progress").kiq("cancel")  # type: ignore[union-attr]

    async def offers_cancel() -> bool:
        return bool((await client.get(f"/api/tasks/{running.task_id}")).json().get("can_cancel"))

    await eventually(offers_cancel)
    token = await csrf_of(client)
    response = await client.post(
        f"/api/tasks/{running.task_id}/cancel", headers={"x-csrf-token": token}
    )
    assert response.json() == {"cancelled": running.task_id}
    result = await running.wait_result(timeout=30)
    assert type(result.error).__name__ == "TaskCancelledError"
    detail = (await client.get(f"/api/tasks/{running.task_id}")).json()
    notes = [e.get("error_message", "") for e in detail["events"] if e["kind"] == "cancelled"]
    assert "cancel from the dashboard" in notes
    assert detail["can_cancel"] is False
    assert detail["result"]["error"]["type"].endswith("TaskCancelledError")


async def test_cancel_is_refused_without_task_control(broker: InMemoryBroker) -> None:
    broker.with_cancellation(None)
    async with client_of(create_app(broker)) as client:
        assert (await client.get("/api/overview")).json()["features"]["cancel"] is False
        token = await csrf_of(client)
        response = await client.post("/api/tasks/abc/cancel", headers={"x-csrf-token": token})
        assert response.status_code == 400
        assert "no task cancellation" in response.json()["error"]


async def test_a_dashboard_without_an_event_store_says_how_to_give_one() -> None:
    import pytest

    from taskq_dashboard import DashboardError

    with pytest.raises(DashboardError, match="with_event_store"):
        create_app(InMemoryBroker())


async def test_pages_are_the_shell_and_unknown_paths_are_404(client: httpx.AsyncClient) -> None:
    pages = ("/", "/tasks", "/tasks/some-id", "/workers", "/dead-letters", "/schedules")
    # a task id of one's own may hold a slash: its link (/tasks/orders%2F7) reaches the page
    for path in (*pages, "/tasks/orders%2F7"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert '<main id="page">' in response.text
    assert (await client.get("/nowhere")).status_code == 404
    script = await client.get("/static/dashboard.js")
    assert script.status_code == 200
    assert "innerHTML" not in script.text  # the script never parses server data as HTML


def test_event_kinds_are_the_states_the_tasks_page_filters_by() -> None:
    script = (
        __import__("pathlib").Path(__import__("taskq_dashboard").__file__).parent
        / "static"
        / "dashboard.js"
    ).read_text()
    states = script.split("const STATES = [")[1].split("]")[0]
    assert [s.strip(' "') for s in states.split(",")] == [kind.value for kind in EventKind]


async def test_a_retried_task_shows_its_retries(
    broker: InMemoryBroker, client: httpx.AsyncClient
) -> None:
    flaky = await broker.find_task("app:flaky").kiq("retry")  # type: ignore[union-attr]

    async def succeeded() -> dict[str, object] | None:
        data = (await client.get(f"/api/tasks/{flaky.task_id}")).json()
        return data if data.get("task", {}).get("state") == "succeeded" else None

    detail = await eventually(succeeded)
    assert detail["retries"] == 1
    kinds = [event["kind"] for event in detail["events"]]  # type: ignore[attr-defined]
    assert kinds.count("retried") == 1
    assert kinds.index("retried") < len(kinds) - 1
    assert detail["result"]["return_value"] == "attempt 2"  # type: ignore[index]


async def test_nan_and_infinite_arguments_are_shown_as_text(
    broker: InMemoryBroker, client: httpx.AsyncClient
) -> None:
    # JSON holds no NaN: a task sent NaN (which the JSON serializer allows) made its detail
    # page answer 500
    sent = await broker.find_task("app:add").kiq(float("nan"), float("inf"))  # type: ignore[union-attr]
    await eventually(lambda: finished(client, 1))
    response = await client.get(f"/api/tasks/{sent.task_id}")
    assert response.status_code == 200
    detail = response.json()
    assert detail["message"]["args"] == ["nan", "inf"]
    assert detail["result"]["is_err"] is True  # an int parameter refuses NaN


async def test_a_store_that_cannot_be_read_sends_a_failure_on_the_stream(
    broker: InMemoryBroker,
) -> None:
    # the stream used to end with the store's error (a traceback in the server's log each
    # time the page reconnected), the page kept showing old data without a word
    class BrokenStore(InMemoryEventStore):
        async def rates(self, minutes: int, now: float | None = None) -> list[MinuteRate]:
            app.state.end_streams()  # this update is the stream's last
            raise EventStoreError("the store holds garbage")

    app = create_app(broker, event_store=BrokenStore(), auth=Auth())
    async with client_of(app) as client:
        response = await client.get("/api/stream")
    assert response.status_code == 200
    assert response.text == 'event: failure\ndata: {"error": "the store holds garbage"}\n\n'


async def test_a_task_with_a_long_id_is_listed_and_shown_under_the_id_kept(
    broker: InMemoryBroker, client: httpx.AsyncClient
) -> None:
    # the list and the page held the whole id (a 5 MB id: a 5 MB page); the id kept holds
    # "...#", which a link must encode
    long_id = "i" * 100_000
    add = broker.find_task("app:add")
    await add.kicker().with_task_id(long_id).kiq(1, 2)  # type: ignore[union-attr]
    await eventually(lambda: finished(client, 1))
    listed = (await client.get("/api/tasks")).json()["tasks"]
    assert [t["task_id"] for t in listed] == [stored_task_id(long_id)]
    detail = (await client.get(f"/api/tasks/{quote(stored_task_id(long_id), safe='')}")).json()
    assert [e["kind"] for e in detail["events"]] == ["sent", "received", "started", "succeeded"]
    assert detail["result"] is None  # kept under the whole id, which the events no longer hold


async def test_an_answer_quotes_a_huge_task_id_or_filter_as_kept_and_never_as_html(
    client: httpx.AsyncClient,
) -> None:
    # an error or a cancel answered the request's whole id: a 60,000-character id (as long as
    # a URL may be here) came back whole, 60 KB (and a 5 MB one, 5 MB, where a server
    # takes such a request line)
    long_id = "i" * 60_000
    token = await csrf_of(client)
    retry = await client.post(f"/api/tasks/{long_id}/retry", headers={"x-csrf-token": token})
    assert retry.status_code == 400
    assert retry.json() == {"error": f"no task {stored_task_id(long_id)!r} in the event store"}
    cancel = await client.post(f"/api/tasks/{long_id}/cancel", headers={"x-csrf-token": token})
    assert cancel.json() == {"cancelled": stored_task_id(long_id)}
    bad_filter = await client.get("/api/tasks", params={"worker": long_id})
    assert bad_filter.status_code == 400
    assert "bad task filter" in bad_filter.json()["error"]
    for answer in (retry, cancel, bad_filter):
        assert len(answer.content) < 2 * MAX_TASK_ID_CHARS
    # what a request holds comes back as JSON data, never as markup: the pages' script puts
    # it in as text, and a page's HTML holds none of it
    markup = XSS_ARGS[0]
    refused = await client.post(
        f"/api/tasks/{quote(markup, safe='')}/retry", headers={"x-csrf-token": token}
    )
    assert refused.headers["content-type"] == "application/json"
    assert markup in refused.json()["error"]
    page = await client.get(f"/tasks/{quote(markup, safe='')}")
    assert page.headers["content-type"].startswith("text/html")
    assert markup not in page.text
    assert "pwned" not in page.text
