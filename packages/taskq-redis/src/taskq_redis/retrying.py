"""A Redis part's calls, riding out an outage on the reconnect policy and failing with typed errors.

The result backend, the schedule source, the limiter and the unique key store run their calls
through `RetryingCalls`: a call that fails on the connection is retried on the broker's
schedule, logged as every outage is, and after ``reconnect_timeout_s`` raises the part's
`RedisUnavailableError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from redis.exceptions import RedisError

from taskq.exceptions import TaskiqError
from taskq.toolkit import check_seconds
from taskq_redis.errors import RedisUnavailableError, answered, unavailable
from taskq_redis.reconnect import (
    CONNECTION_ERRORS,
    DEFAULT_MAX_DELAY_S,
    Reconnector,
    TransientAnswerError,
)

#: Seconds a call keeps retrying while Redis does not answer, as the broker's ``send_timeout_s``.
DEFAULT_RECONNECT_TIMEOUT_S = 30.0
#: The cap on the pause between two attempts, as the broker's ``reconnect_max_delay_s``.
DEFAULT_RECONNECT_MAX_DELAY_S = DEFAULT_MAX_DELAY_S

if TYPE_CHECKING:
    from taskq_redis.connection import RedisConnection

_Result = TypeVar("_Result")


class RetryingCalls:
    """Runs the Redis calls of one part: retried through an outage, then a typed error.

    Args:
        server: The server's printable name (its URL without password).
        max_delay_s: The cap on the pause between two attempts (``reconnect_max_delay_s``).
        timeout_s: Seconds a call keeps retrying while Redis does not answer
            (``reconnect_timeout_s``).
        unavailable_type: What a call raises when Redis did not answer in time.
        error_type: What a call raises when Redis answered with an error.
        connection: The part's connection, whose connections are dropped when Redis answers
            as a replica (see `Reconnector`).

    Raises:
        ValueError: ``max_delay_s`` is not a finite number above 0, or ``timeout_s`` not a
            finite number of at least 0.
    """

    def __init__(
        self,
        server: str,
        max_delay_s: float,
        timeout_s: float,
        unavailable_type: type[RedisUnavailableError],
        error_type: type[TaskiqError],
        connection: RedisConnection | None = None,
    ) -> None:
        check_seconds("reconnect_max_delay_s", max_delay_s)
        check_seconds("reconnect_timeout_s", timeout_s, zero=True)
        drop = None if connection is None else connection.drop_connections
        self.reconnector = Reconnector(server, max_delay_s, drop)
        self.timeout_s = timeout_s
        self.unavailable_type = unavailable_type
        self.error_type = error_type

    async def __call__(
        self,
        action: str,
        operation: Callable[[], Awaitable[_Result]],
        *,
        retry: bool = True,
        unavailable_type: type[RedisUnavailableError] | None = None,
        error_type: type[TaskiqError] | None = None,
    ) -> _Result:
        """Await ``operation()`` (``action`` names it, as a verb phrase) and return its result.

        With ``retry``, a call failing on the connection is tried again for ``timeout_s``;
        without it, after one attempt. ``unavailable_type`` and ``error_type`` replace the
        part's for this call (a store whose calls fail in two ways).

        Raises:
            RedisUnavailableError: Redis did not answer (its ``unavailable_type``).
            TaskiqError: Redis answered with an error, or the call holds text that is not
                valid Unicode (a lone surrogate) (its ``error_type``).
        """
        unavailable_type = unavailable_type or self.unavailable_type
        error_type = error_type or self.error_type
        limit = self.timeout_s if retry else 0.0
        try:
            return await self.reconnector.call(action, operation, give_up_after_s=limit)
        except TransientAnswerError as exc:  # still answered after timeout_s
            server = self.reconnector.server
            raise error_type(answered(action, server, exc.answer)) from exc.answer
        except CONNECTION_ERRORS as exc:
            server = self.reconnector.server
            waited = limit if limit and not self.reconnector.closed else None
            raise unavailable(unavailable_type, action, server, exc, waited) from exc
        except RedisError as exc:
            raise error_type(answered(action, self.reconnector.server, exc)) from exc
        except UnicodeEncodeError as exc:  # redis-py encodes text as UTF-8: no lone surrogate
            raise error_type(
                f"cannot {action}: it holds text that is not valid Unicode ({exc})"
            ) from exc


def store_calls(connection: RedisConnection, max_delay_s: float, timeout_s: float) -> RetryingCalls:
    """The retried calls of a store on ``connection`` (the limiter, the unique key store).

    They raise `RedisUnavailableError` when Redis stays silent, `TaskiqError` when it answers
    with an error.
    """
    return RetryingCalls(
        connection.server, max_delay_s, timeout_s, RedisUnavailableError, TaskiqError, connection
    )
