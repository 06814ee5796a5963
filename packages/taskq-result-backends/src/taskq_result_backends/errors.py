"""The errors of the result backends beyond taskq's own: a store that cannot be used."""

from __future__ import annotations

from taskq.exceptions import ResultBackendError


class ResultStoreUnavailableError(ResultBackendError):
    """The store behind a result backend cannot be reached or opened.

    For SQLite: the file cannot be opened or created (missing directory, no permission, not a
    database). For Redis: the server does not answer at the configured URL.
    """

    __template__ = "the result store cannot be reached"


class ResultStoreBusyError(ResultBackendError):
    """The SQLite database stayed locked by another connection for longer than allowed.

    Another process holds a long write transaction: find it, or raise ``busy_timeout_s``.
    """

    __template__ = "the result store stayed locked"
