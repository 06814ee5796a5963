"""taskq-dashboard: watch and steer queues, tasks, workers, dead letters and schedules.

`create_app` builds the ASGI app (Starlette) to run with ``taskq dashboard`` or to mount in
your own Starlette or FastAPI app; `DashboardSettings` and `Auth` configure it.
"""

from __future__ import annotations

from taskq_dashboard.app import DashboardApp, create_app
from taskq_dashboard.errors import DashboardError, InsecureBindError
from taskq_dashboard.security import Auth
from taskq_dashboard.state import DashboardSettings

__all__ = [
    "Auth",
    "DashboardApp",
    "DashboardError",
    "DashboardSettings",
    "InsecureBindError",
    "create_app",
]
