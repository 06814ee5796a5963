"""The dashboard's errors: bad settings at start, bad requests and refused actions."""

from __future__ import annotations

from taskq.exceptions import TaskiqError


class DashboardError(TaskiqError):
    """The dashboard cannot do what was asked; the message says what to change."""


class AddressUnavailableError(DashboardError):
    """The dashboard cannot listen on its address: the port is in use, or not this host's."""


class InsecureBindError(DashboardError):
    """The dashboard was asked to listen beyond 127.0.0.1 without an auth setting."""
