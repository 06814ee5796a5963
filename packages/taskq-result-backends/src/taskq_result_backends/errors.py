"""The errors of the result backends beyond taskq's own: a store that cannot be used or read."""

from __future__ import annotations

from taskq.exceptions import ResultBackendError, ResultGetError


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


class ResultKeyTypeError(ResultGetError):
    """A result or progress key holds another kind of value than the backend stores there.

    The store answered (it is not an outage): for Redis, other code wrote a list, a hash, ...
    at ``{prefix}:result:{task_id}``, where `RedisResultBackend` keeps a string. Storing the
    task's result replaces it; delete the key, or give the backend a prefix of its own.
    ``key``, ``found`` and ``needed`` say which key and what.
    """

    __template__ = "a key of the result store holds another kind of value than it needs"
    key: str
    found: str
    needed: str
