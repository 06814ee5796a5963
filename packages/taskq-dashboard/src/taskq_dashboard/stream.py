"""Live updates: a server-sent event stream that tells open pages to redraw.

Every ``refresh`` seconds the stream sends an ``overview`` event carrying the overview's
data; pages redraw from it (the overview) or fetch their own data again (the others). When the
overview cannot be read, a ``failure`` event carries the error instead.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from taskq.exceptions import TaskiqError
from taskq_dashboard import views
from taskq_dashboard.api import state_of
from taskq_dashboard.state import DashboardState

#: Longest sleep of a stream between two checks that the server still runs.
WAKE_S = 0.25


async def stream(request: Request) -> Response:
    """``GET /api/stream``: ``text/event-stream`` of overview updates until the page closes."""
    state = state_of(request)
    await state.ensure_started()

    async def updates() -> AsyncIterator[str]:
        while state.streams_open and not await request.is_disconnected():
            yield await update(state)
            await _wait(state)

    return StreamingResponse(
        updates(), media_type="text/event-stream", headers={"x-accel-buffering": "no"}
    )


async def update(state: DashboardState) -> str:
    """One update: an ``overview`` event, or a ``failure`` event saying why there is none.

    A store that cannot be read (down, or holding data taskq did not write) fails this update
    only: the page shows the error and the stream goes on.
    """
    try:
        data = await views.overview(state)
    except TaskiqError as error:
        return f"event: failure\ndata: {json.dumps({'error': str(error)})}\n\n"
    return f"event: overview\ndata: {json.dumps(data)}\n\n"


async def _wait(state: DashboardState) -> None:
    """Sleep until the next update, in short slices so that a stopping server need not wait."""
    deadline = time.monotonic() + state.settings.refresh
    # a flag, not an asyncio.Event: `end_streams` runs in a signal handler
    while state.streams_open and (left := deadline - time.monotonic()) > 0:  # noqa: ASYNC110
        await asyncio.sleep(min(left, WAKE_S))
