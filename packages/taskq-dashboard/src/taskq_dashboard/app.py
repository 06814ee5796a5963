"""`create_app`: the dashboard as a Starlette app, to run alone or mount in your own app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from taskq_dashboard import api, pages, stream
from taskq_dashboard.errors import DashboardError
from taskq_dashboard.security import Auth, SecurityMiddleware
from taskq_dashboard.state import DashboardSettings, DashboardState, SchedulerLike

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from taskq.abc.event_store import AsyncEventStore
    from taskq.broker import AsyncBroker

STATIC_DIR = Path(__file__).parent / "static"


class DashboardApp:
    """The dashboard as an ASGI app; ``state`` holds the broker, store and scheduler it reads."""

    def __init__(self, asgi: ASGIApp, state: DashboardState) -> None:
        self.asgi = asgi
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (or the lifespan events)."""
        await self.asgi(scope, receive, send)


def create_app(
    broker: AsyncBroker,
    *,
    event_store: AsyncEventStore | None = None,
    scheduler: SchedulerLike | None = None,
    settings: DashboardSettings | None = None,
    auth: Auth | None = None,
) -> DashboardApp:
    """The dashboard of ``broker``: an ASGI app to serve alone or mount at a path.

    Args:
        broker: The broker whose tasks, queue and dead letters are shown; the dashboard
            starts it on the first request unless it is running.
        event_store: Where task events and heartbeats are read (default: the broker's,
            given with ``broker.with_event_store``).
        scheduler: A scheduler whose sources the Schedules page lists (optional).
        settings: Read-only mode, the staleness threshold, the live update interval.
        auth: The token or basic-auth credentials every request must carry (default: none;
            then serve on 127.0.0.1 only).

    Raises:
        DashboardError: The broker has no event store and none is given.
    """
    store = event_store if event_store is not None else broker.event_store
    if store is None:
        raise DashboardError(
            "the dashboard reads an event store: give the broker one "
            "(broker.with_event_store(...)) or pass event_store="
        )
    state = DashboardState(broker, store, scheduler, settings or DashboardSettings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await state.close()

    routes = [
        *api.routes(),
        Route("/api/stream", stream.stream, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        *(Route(path, pages.shell, methods=["GET"]) for path in pages.page_paths()),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    secured = SecurityMiddleware(app, auth or Auth())
    app.state.dashboard = state
    app.state.csrf_token = secured.csrf_token
    return DashboardApp(secured, state)
