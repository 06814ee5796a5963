"""The HTML shell every page shares; the dashboard's script draws the page from the JSON API.

The shell holds no data: messages reach the page only as JSON, which the script puts into
the page as text (never as HTML), under a Content-Security-Policy that runs no inline code.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from taskq_dashboard.api import state_of

#: The pages of the dashboard: path, title.
PAGES = [
    ("/", "Overview"),
    ("/tasks", "Tasks"),
    ("/workers", "Workers"),
    ("/dead-letters", "Dead letters"),
    ("/schedules", "Schedules"),
]

_SHELL = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="taskq-root" content="{root}">
<meta name="csrf-token" content="{csrf}">
<title>taskq dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{root}/static/dashboard.css">
<script src="{root}/static/dashboard.js" defer></script>
</head>
<body>
<header>
<a class="brand" href="{root}/">taskq</a>
<nav>{nav}</nav>
<span id="live" class="live" title="live updates">live</span>
</header>
<main id="page"><p class="muted">Loading…</p></main>
</body>
</html>
"""


async def shell(request: Request) -> Response:
    """The page at any dashboard path: the shell, which the script fills in."""
    root = html.escape(request.scope.get("root_path", "").rstrip("/"), quote=True)
    nav = "".join(
        f'<a href="{root}{path}" data-path="{path}">{html.escape(title)}</a>'
        for path, title in PAGES
    )
    csrf = html.escape(request.app.state.csrf_token, quote=True)
    return HTMLResponse(_SHELL.format(root=root, csrf=csrf, nav=nav))


def page_paths() -> list[str]:
    """The paths the shell answers: each page, and a task's detail page (its id may hold "/")."""
    return [path for path, _ in PAGES] + ["/tasks/{task_id:path}"]


__all__ = ["PAGES", "page_paths", "shell", "state_of"]
