"""The errors of the retry middlewares: one a task raises, one a misconfiguration raises."""

from __future__ import annotations

from taskq.exceptions import TaskiqError


class NoRetryError(TaskiqError):
    """Raise it from a task to fail without being retried; the error is stored at once.

    ``raise NoRetryError("card declined") from exc`` keeps the original error as its cause.
    """

    __template__ = "the task failed and asked not to be retried"


class RetryConfigurationError(TaskiqError):
    """A retry middleware cannot do what it was configured for (raised at startup)."""

    __template__ = "the retry middleware is misconfigured"
