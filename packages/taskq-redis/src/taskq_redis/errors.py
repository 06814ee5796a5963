"""The errors of taskq's Redis parts: one family for "the server does not answer".

`RedisUnavailableError` is the base: the broker, the result backend and the schedule source
raise subclasses of it that are also their own kind of error (a `BrokerError`, a
`ResultBackendError`, ...), built by `unavailable` (or `translated`) so that every outage
reads the same.
`InvalidLabelError` (a bad ``delay`` or ``priority`` label) is taskq's own, re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from redis.exceptions import RedisError

from taskq.exceptions import (
    BrokerError,
    EventStoreError,
    InvalidLabelError,
    SendTaskError,
    TaskiqError,
)
from taskq_redis.reconnect import CONNECTION_ERRORS

__all__ = [
    "EventStoreUnavailableError",
    "InvalidLabelError",
    "RedisBrokerUnavailableError",
    "RedisUnavailableError",
    "SendUnavailableError",
    "translated",
    "unavailable",
]

_Error = TypeVar("_Error", bound="RedisUnavailableError")


class RedisUnavailableError(TaskiqError):
    """A Redis server did not answer: check that it runs and that the URL is right.

    The base of every such error of the Redis parts; catch it to handle an outage wherever
    it happens.
    """

    __template__ = "the Redis server does not answer"


class RedisBrokerUnavailableError(RedisUnavailableError, BrokerError):
    """The broker's Redis did not answer (at startup, or for a dead-letter operation)."""

    __template__ = "the broker's Redis server does not answer"


class SendUnavailableError(RedisBrokerUnavailableError, SendTaskError):
    """A task could not be sent: Redis stayed unreachable for the broker's ``send_timeout_s``."""

    __template__ = "the task could not be sent: the Redis server does not answer"


class EventStoreUnavailableError(RedisUnavailableError, EventStoreError):
    """The event store's Redis did not answer."""

    __template__ = "the event store's Redis server does not answer"


def unavailable(
    error_type: type[_Error],
    action: str,
    server: str,
    cause: BaseException,
    waited_s: float | None = None,
) -> _Error:
    """The error of type ``error_type`` saying that ``action`` failed: ``server`` is silent.

    Args:
        error_type: A subclass of `RedisUnavailableError`.
        action: What was being done, as a verb phrase ("store the result of task t1").
        server: The server's redacted URL.
        cause: The connection error redis-py raised.
        waited_s: Seconds the call kept retrying before giving up (None: it did not retry).
    """
    silence = "does not answer" if waited_s is None else f"did not answer for {waited_s:g} s"
    return error_type(
        f"cannot {action}: Redis at {server} {silence} ({cause}); check that it runs and that "
        "the URL is right"
    )


@contextmanager
def translated(
    action: str,
    server: str,
    unavailable_type: type[RedisUnavailableError],
    error_type: type[TaskiqError],
) -> Iterator[None]:
    """Within the block, turn redis-py's errors into taskq's, naming ``server`` (redacted).

    A lost connection becomes `unavailable` ``unavailable_type``; any other Redis error
    (the server answered with one) becomes ``error_type``, and so does text that redis-py
    cannot encode (a lone surrogate).
    """
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise unavailable(unavailable_type, action, server, exc) from exc
    except RedisError as exc:
        raise error_type(f"cannot {action}: Redis at {server} answered an error: {exc}") from exc
    except UnicodeEncodeError as exc:  # redis-py encodes text as UTF-8: no lone surrogate
        raise error_type(f"cannot {action}: {exc}") from exc
