"""Live updates: a server-sent event stream that tells open pages to redraw.

Every ``refresh`` seconds the stream sends an ``overview`` event carrying the overview's
data; pages redraw from it (the overview) or fetch their own data again (the others).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from taskq_dashboard import views
from taskq_dashboard.api import state_of


async def stream(request: Request) -> Response:
    """``GET /api/stream``: ``text/event-stream`` of overview updates until the page closes."""
    state = state_of(request)
    await state.ensure_started()

    async def updates() -> AsyncIterator[str]:
        while not await request.is_disconnected():
            data = await views.overview(state)
            yield f"event: overview\ndata: {json.dumps(data)}\n\n"
            await asyncio.sleep(state.settings.refresh)

    return StreamingResponse(
        updates(), media_type="text/event-stream", headers={"x-accel-buffering": "no"}
    )
