"""The dashboard mounted inside a user's Starlette app, at a path."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from taskq_dashboard import create_app
from taskq_inmemory import InMemoryBroker

from .conftest import client_of, csrf_of


async def test_mounted_at_a_path_every_page_link_and_api_call_stays_under_it(
    broker: InMemoryBroker,
) -> None:
    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("the user's app")

    user_app = Starlette(routes=[Route("/", home), Mount("/ops/dashboard", app=create_app(broker))])
    async with client_of(user_app) as client:
        assert (await client.get("/")).text == "the user's app"
        page = await client.get("/ops/dashboard/tasks")
        assert page.status_code == 200
        assert '<meta name="taskq-root" content="/ops/dashboard">' in page.text
        assert 'src="/ops/dashboard/static/dashboard.js"' in page.text
        assert 'href="/ops/dashboard/workers"' in page.text
        assert (await client.get("/ops/dashboard/static/dashboard.css")).status_code == 200
        await broker.find_task("app:add").kiq(1, 2)  # type: ignore[union-attr]
        await broker.wait_all()
        overview = await client.get("/ops/dashboard/api/overview")
        assert overview.status_code == 200
        token = await csrf_of(client, "/ops/dashboard/")
        action = await client.post(
            "/ops/dashboard/api/dead-letters/replay", headers={"x-csrf-token": token}
        )
        assert action.status_code == 400  # reached the action: this broker keeps no dead letters
        assert (await client.get("/tasks")).status_code == 404  # nothing outside its path


async def test_mounted_in_a_fastapi_app(broker: InMemoryBroker) -> None:
    from fastapi import FastAPI

    api = FastAPI()

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    api.mount("/dashboard", create_app(broker))
    async with client_of(api) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        page = await client.get("/dashboard/workers")
        assert '<meta name="taskq-root" content="/dashboard">' in page.text
        assert (await client.get("/dashboard/api/workers")).status_code == 200
        token = await csrf_of(client, "/dashboard/")
        refused = await client.post("/dashboard/api/tasks/x/cancel")
        assert refused.status_code == 403
        sent = await client.post("/dashboard/api/tasks/x/cancel", headers={"x-csrf-token": token})
        assert sent.json() == {"cancelled": "x"}
