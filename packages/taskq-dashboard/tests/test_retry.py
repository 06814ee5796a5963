"""Task detail shows the arguments a task was sent with; a failed task can be sent again."""

from __future__ import annotations

import time
from typing import Any

import httpx

from taskq.event_stores import InMemoryEventStore
from taskq.message import TaskiqMessage
from taskq.task_events import EventKind, TaskEvent, WorkerId
from taskq.testing import eventually
from taskq_dashboard import DashboardSettings, create_app
from taskq_inmemory import InMemoryBroker

from .conftest import XSS_ARGS, client_of, csrf_of, make_broker


async def detail_in_state(client: httpx.AsyncClient, task_id: str, state: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        data: dict[str, Any] = (await client.get(f"/api/tasks/{task_id}")).json()
        return data if data.get("task", {}).get("state") == state else None

    found: dict[str, Any] = await eventually(reached)
    return found


async def send_failing(broker: InMemoryBroker, text: str) -> str:
    task = broker.find_task("app:fail")
    assert task is not None
    return (await task.kicker().with_labels(team="<i>ops</i>").kiq(text)).task_id


async def test_task_detail_shows_the_arguments_and_labels_it_was_sent_with(
    broker: InMemoryBroker, client: httpx.AsyncClient
) -> None:
    failed = await send_failing(broker, XSS_ARGS[0])
    detail = await detail_in_state(client, failed, "failed")
    assert detail["message"]["task_name"] == "app:fail"
    assert detail["message"]["args"] == [XSS_ARGS[0]]
    assert detail["message"]["kwargs"] == {}
    assert detail["message"]["labels"]["team"] == "<i>ops</i>"
    assert detail["message_note"] is None
    sent = detail["events"][0]
    assert sent["kind"] == "sent"
    assert "message" not in sent, "the timeline carries the size, the detail the arguments"
    assert sent["message_size"] > 0
    assert detail["can_retry"] is True


async def test_retry_sends_a_failed_task_again_as_a_new_task_and_links_the_two(
    broker: InMemoryBroker, client: httpx.AsyncClient
) -> None:
    failed = await send_failing(broker, "try again")
    await detail_in_state(client, failed, "failed")
    refused = await client.post(f"/api/tasks/{failed}/retry")
    assert refused.status_code == 403, "a retry without the page's CSRF token is refused"
    token = await csrf_of(client)
    response = await client.post(f"/api/tasks/{failed}/retry", headers={"x-csrf-token": token})
    again = response.json()["task_id"]
    assert again != failed
    new = await detail_in_state(client, again, "failed")  # the same arguments fail the same way
    assert new["message"]["args"] == ["try again"]
    assert new["message"]["labels"]["team"] == "<i>ops</i>"
    assert new["result"]["error"]["message"] == "try again"
    old = (await client.get(f"/api/tasks/{failed}")).json()
    assert old["task"]["state"] == "retried"
    assert old["retried_as"] == [again]
    assert old["events"][-1]["new_task_id"] == again
    assert old["events"][-1]["error_message"] == "retry from the dashboard"
    assert old["can_retry"] is False
    twice = await client.post(f"/api/tasks/{failed}/retry", headers={"x-csrf-token": token})
    assert twice.status_code == 400
    assert "only a failed task can be retried" in twice.json()["error"]


async def test_a_task_sent_with_a_message_over_the_bound_shows_why_and_cannot_be_retried() -> None:
    broker = make_broker().with_event_store(InMemoryEventStore(), max_message_bytes=16)
    async with broker, client_of(create_app(broker)) as client:
        failed = await send_failing(broker, "too long to keep")
        detail = await detail_in_state(client, failed, "failed")
        assert detail["message"] is None
        assert "more than the sender's event recorder keeps" in detail["message_note"]
        assert detail["can_retry"] is False
        token = await csrf_of(client)
        response = await client.post(f"/api/tasks/{failed}/retry", headers={"x-csrf-token": token})
        assert response.status_code == 400
        assert "cannot be sent again" in response.json()["error"]


async def test_read_only_offers_no_retry(broker: InMemoryBroker) -> None:
    app = create_app(broker, settings=DashboardSettings(read_only=True))
    async with client_of(app) as client:
        failed = await send_failing(broker, "read only")
        detail = await detail_in_state(client, failed, "failed")
        assert detail["message"]["args"] == ["read only"], "arguments show in read-only mode"
        assert detail["can_retry"] is False
        token = await csrf_of(client)
        response = await client.post(f"/api/tasks/{failed}/retry", headers={"x-csrf-token": token})
        assert response.json()["error"] == "the dashboard is read-only"


async def test_a_retry_through_a_broker_without_the_store_records_the_new_message() -> None:
    broker = make_broker()
    broker.event_store = None  # the senders record nowhere: the dashboard reads another store
    store = InMemoryEventStore()
    sent = broker.formatter.dumps(TaskiqMessage("t-old", "app:add", {"team": "a"}, [2, 3], {}))
    worker, now = WorkerId("elsewhere", 1), time.time()
    await store.write(
        [
            TaskEvent(EventKind.SENT, "t-old", "app:add", worker, now, message=sent.message),
            TaskEvent(EventKind.FAILED, "t-old", "app:add", worker, now, error_type="E"),
        ]
    )
    async with broker, client_of(create_app(broker, event_store=store)) as client:
        token = await csrf_of(client)
        response = await client.post("/api/tasks/t-old/retry", headers={"x-csrf-token": token})
        again = response.json()["task_id"]
        new = (await client.get(f"/api/tasks/{again}")).json()
        assert new["message"] == {
            "task_name": "app:add",
            "args": [2, 3],
            "kwargs": {},
            "labels": {"team": "a"},
        }
        assert (await client.get("/api/tasks/t-old")).json()["retried_as"] == [again]
