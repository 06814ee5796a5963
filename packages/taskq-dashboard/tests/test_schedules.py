"""The Schedules page's API: every source listed with next fires; run now, delete, add."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timezone
from urllib.parse import quote

import httpx
import pytest

from taskq.scheduled_task import ScheduledTask
from taskq.testing import eventually
from taskq_dashboard import create_app
from taskq_inmemory import InMemoryBroker
from taskq_scheduler import InMemoryScheduleSource, LabelScheduleSource, TaskiqScheduler

from .conftest import client_of, csrf_of

NIGHTLY = ScheduledTask(
    task_name="app:add", args=[1, 2], cron="30 2 * * *", cron_offset="Europe/Paris"
)


@pytest.fixture
async def scheduled(broker: InMemoryBroker) -> AsyncIterator[httpx.AsyncClient]:
    broker.find_task("app:add").labels["schedule"] = [{"interval": 3600}]  # type: ignore[union-attr]
    scheduler = TaskiqScheduler(
        broker, [LabelScheduleSource(broker), InMemoryScheduleSource([NIGHTLY])]
    )
    async with client_of(create_app(broker, scheduler=scheduler)) as client:
        client.headers["x-csrf-token"] = await csrf_of(client)
        yield client


async def test_every_source_is_listed_with_kind_timezone_and_next_fire(
    scheduled: httpx.AsyncClient,
) -> None:
    data = (await scheduled.get("/api/schedules")).json()
    labels, memory = data["sources"]
    assert (labels["source"], labels["dynamic"]) == ("LabelScheduleSource", False)
    assert (memory["source"], memory["dynamic"]) == ("InMemoryScheduleSource", True)
    # the label source also lists shared tasks other tests may have registered
    [every_hour] = [s for s in labels["schedules"] if s["task_name"] == "app:add"]
    assert (every_hour["kind"], every_hour["spec"]) == ("interval", "3600 s")
    [nightly] = memory["schedules"]
    assert (nightly["kind"], nightly["spec"], nightly["timezone"]) == (
        "cron",
        "30 2 * * *",
        "Europe/Paris",
    )
    fire = datetime.fromtimestamp(nightly["next_fire"], tz=timezone.utc)
    assert fire > datetime.now(timezone.utc)
    assert fire.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris")).hour == 2
    assert "app:add" in data["tasks"]


async def test_run_now_sends_the_task_with_its_arguments(
    broker: InMemoryBroker, scheduled: httpx.AsyncClient
) -> None:
    sent = await scheduled.post(f"/api/schedules/1/{NIGHTLY.schedule_id}/run")
    task_id = sent.json()["task_id"]

    async def succeeded() -> bool:
        detail = (await scheduled.get(f"/api/tasks/{task_id}")).json()
        return detail.get("task", {}).get("state") == "succeeded"

    await eventually(succeeded)
    detail = (await scheduled.get(f"/api/tasks/{task_id}")).json()
    assert detail["result"]["return_value"] == 3
    assert [
        s["schedule_id"]
        for s in (await scheduled.get("/api/schedules")).json()["sources"][1]["schedules"]
    ] == [NIGHTLY.schedule_id]


async def test_add_and_delete_on_a_dynamic_source(scheduled: httpx.AsyncClient) -> None:
    added = await scheduled.post(
        "/api/schedules/1",
        json={"task_name": "app:add", "kind": "interval", "spec": "90", "args": "[4, 5]"},
    )
    assert added.status_code == 200, added.text
    new_id = added.json()["schedule_id"]
    memory = (await scheduled.get("/api/schedules")).json()["sources"][1]
    new = next(s for s in memory["schedules"] if s["schedule_id"] == new_id)
    assert (new["spec"], new["args"]) == ("90 s", [4, 5])
    assert time.time() < new["next_fire"] <= time.time() + 91
    deleted = await scheduled.post(f"/api/schedules/1/{new_id}/delete")
    assert deleted.status_code == 200
    memory = (await scheduled.get("/api/schedules")).json()["sources"][1]
    assert [s["schedule_id"] for s in memory["schedules"]] == [NIGHTLY.schedule_id]


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"task_name": "app:nope", "kind": "interval", "spec": "60"}, "knows no task"),
        ({"task_name": "app:add", "kind": "weekly", "spec": "1"}, "kind must be"),
        ({"task_name": "app:add", "kind": "interval", "spec": "0.5"}, "at least 1 second"),
        ({"task_name": "app:add", "kind": "interval", "spec": "nan"}, "finite"),
        ({"task_name": "app:add", "kind": "interval", "spec": "inf"}, "finite"),
        ({"task_name": "app:add", "kind": "time", "spec": "2030-01-01T00:00:00"}, "aware"),
        ({"task_name": "app:add", "kind": "interval", "spec": "60", "args": "{"}, "bad schedule"),
    ],
)
async def test_a_bad_schedule_is_refused_with_the_reason(
    scheduled: httpx.AsyncClient, form: dict[str, str], error: str
) -> None:
    response = await scheduled.post("/api/schedules/1", json=form)
    assert response.status_code == 400
    assert error in response.json()["error"]


async def test_a_static_source_refuses_changes(scheduled: httpx.AsyncClient) -> None:
    label_id = (await scheduled.get("/api/schedules")).json()["sources"][0]["schedules"][0]
    schedule_id = quote(label_id["schedule_id"], safe="")  # app:add#0, as the page sends it
    response = await scheduled.post(f"/api/schedules/0/{schedule_id}/delete")
    assert response.status_code == 400
    assert "cannot change schedules" in response.json()["error"]
    assert (await scheduled.post("/api/schedules/7/x/run")).status_code == 400
    assert (await scheduled.post("/api/schedules/1/no-such/run")).status_code == 400


async def test_without_a_scheduler_the_page_says_so(broker: InMemoryBroker) -> None:
    async with client_of(create_app(broker)) as client:
        assert (await client.get("/api/schedules")).json()["available"] is False


async def test_arguments_json_cannot_hold_are_listed_as_their_text(broker: InMemoryBroker) -> None:
    # a schedule written in code may hold any object: JSON held none, the page answered 500
    odd = ScheduledTask(
        task_name="app:add", args=[date(2026, 1, 2)], kwargs={"b": float("nan")}, interval=60
    )
    scheduler = TaskiqScheduler(broker, [InMemoryScheduleSource([odd])])
    async with client_of(create_app(broker, scheduler=scheduler)) as client:
        response = await client.get("/api/schedules")
    assert response.status_code == 200
    [listed] = response.json()["sources"][0]["schedules"]
    assert (listed["args"], listed["kwargs"]) == (["datetime.date(2026, 1, 2)"], {"b": "nan"})
