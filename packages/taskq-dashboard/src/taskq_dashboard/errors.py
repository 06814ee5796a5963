"""The dashboard's errors: bad settings at start, bad requests and refused actions."""

from __future__ import annotations

from taskq.exceptions import TaskiqError


class DashboardError(TaskiqError):
    """The dashboard cannot do what was asked; the message says what to change."""


class InsecureBindError(DashboardError):
    """The dashboard was asked to listen beyond 127.0.0.1 without an auth setting."""
