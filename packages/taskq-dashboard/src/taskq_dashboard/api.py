"""The JSON API: one GET per page, one POST per action (see docs/dashboard.md)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskq.exceptions import TaskiqError
from taskq_dashboard import actions, dead_letter_views, schedule_views, views
from taskq_dashboard.errors import DashboardError
from taskq_dashboard.state import DashboardState

Handler = Callable[[Request], Awaitable[Response]]


def state_of(request: Request) -> DashboardState:
    """The dashboard state the app was built with."""
    state: DashboardState = request.app.state.dashboard
    return state


def _json(read: Callable[[DashboardState, Request], Awaitable[Any]]) -> Handler:
    """An endpoint answering ``read``'s data as JSON; a `DashboardError` answers 400."""

    async def endpoint(request: Request) -> Response:
        state = state_of(request)
        await state.ensure_started()
        try:
            data = await read(state, request)
        except TaskiqError as error:  # a DashboardError, or the broker's or a source's refusal
            return JSONResponse({"error": str(error)}, status_code=400)
        if data is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(data)

    return endpoint


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        raise DashboardError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise DashboardError("the request body must be a JSON object")
    return data


async def _ids(request: Request) -> list[str] | None:
    """The dead-letter ids a replay or purge names (``{"ids": null}`` or no body: all)."""
    ids = (await _body(request)).get("ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise DashboardError("ids must be a list of dead-letter ids, or null for all")
    return ids


def _source(request: Request) -> int:
    try:
        return int(request.path_params["source"])
    except ValueError:
        raise DashboardError("the source is the index of a scheduler source") from None


def routes() -> list[Route]:
    """Every route of the JSON API, under ``/api``."""
    get = [
        ("/api/overview", lambda s, r: views.overview(s)),
        ("/api/tasks", lambda s, r: views.tasks(s, r.query_params)),
        ("/api/tasks/{task_id:path}", lambda s, r: views.task_detail(s, r.path_params["task_id"])),
        ("/api/workers", lambda s, r: views.workers(s)),
        (
            "/api/dead-letters",
            lambda s, r: dead_letter_views.dead_letters(s, r.query_params.get("after")),
        ),
        ("/api/schedules", lambda s, r: schedule_views.schedules(s)),
    ]
    post = [
        (
            "/api/tasks/{task_id:path}/cancel",
            lambda s, r: actions.cancel_task(s, r.path_params["task_id"]),
        ),
        (
            "/api/tasks/{task_id:path}/retry",
            lambda s, r: actions.retry_task(s, r.path_params["task_id"]),
        ),
        ("/api/dead-letters/replay", _replay),
        ("/api/dead-letters/purge", _purge),
        (
            "/api/schedules/{source}/{schedule_id:path}/run",
            lambda s, r: actions.run_schedule_now(s, _source(r), r.path_params["schedule_id"]),
        ),
        (
            "/api/schedules/{source}/{schedule_id:path}/delete",
            lambda s, r: actions.delete_schedule(s, _source(r), r.path_params["schedule_id"]),
        ),
        ("/api/schedules/{source}", _add_schedule),
    ]
    return [Route(path, _json(read), methods=["GET"]) for path, read in get] + [
        Route(path, _json(act), methods=["POST"]) for path, act in post
    ]


async def _replay(state: DashboardState, request: Request) -> dict[str, Any]:
    return await actions.replay_dead_letters(state, await _ids(request))


async def _purge(state: DashboardState, request: Request) -> dict[str, Any]:
    return await actions.purge_dead_letters(state, await _ids(request))


async def _add_schedule(state: DashboardState, request: Request) -> dict[str, Any]:
    return await actions.add_schedule(state, _source(request), await _body(request))
