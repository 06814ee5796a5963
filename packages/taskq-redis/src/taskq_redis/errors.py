"""The errors of taskq's Redis parts: one family for "the server does not answer".

`RedisUnavailableError` is the base: the broker, the result backend and the schedule source
raise subclasses of it that are also their own kind of error (a `BrokerError`, a
`ResultBackendError`, ...), built by `unavailable` (or `translated`) so that every outage
reads the same.
A server that is up and answers an error (out of memory, a read-only replica, an ACL user
lacking a permission, ...) is worded by `answered`, which adds what to do about Redis's answer;
a task that Redis refuses raises `SendRefusedError`.
`InvalidLabelError` (a bad ``delay`` or ``priority`` label) is taskq's own, re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from redis.exceptions import RedisError

from taskq.exceptions import (
    BrokerError,
    EventStoreError,
    InvalidLabelError,
    SendTaskError,
    TaskiqError,
)
from taskq_redis.reconnect import CONNECTION_ERRORS, REPLICA_ANSWERS, transient_code

if TYPE_CHECKING:
    from taskq_redis.connection import RedisConnection

__all__ = [
    "EventStoreUnavailableError",
    "InvalidLabelError",
    "RedisAnsweredError",
    "RedisBrokerUnavailableError",
    "RedisUnavailableError",
    "SendRefusedError",
    "SendUnavailableError",
    "answered",
    "translated",
    "unavailable",
]

_Error = TypeVar("_Error", bound="RedisUnavailableError")

#: What to do about an error Redis answers, by the error's code (the first word of the reply).
ANSWER_ADVICE = {
    "OOM": (
        "Redis reached its maxmemory and its policy (noeviction) refuses writes: raise "
        "maxmemory, free memory, or let the workers drain the queue"
    ),
    "READONLY": (
        "the server is a read-only replica (a failover?): taskq reconnects on each retry, so "
        "an address that moves to the new primary recovers by itself; if the URL names a "
        "replica, point it at the primary"
    ),
    "UNBLOCKED": "the server turned into a replica (a failover?): taskq reconnects and retries",
    "NOPERM": (
        "the ACL user lacks that command or key pattern: grant it to the user (ACL SETUSER) "
        "for the key prefix taskq uses"
    ),
    "NOAUTH": "Redis requires a password: give it in the URL (redis://user:password@host)",
    "WRONGPASS": "the user or password is wrong (or the user is disabled): fix the URL",
    "LOADING": "Redis is loading its dataset after a restart: it answers once loaded",
    "BUSY": "a script has run for too long: it answers once it ends (or after SCRIPT KILL)",
    "MASTERDOWN": (
        "the server is a replica not linked to its primary (a failover?): taskq reconnects on "
        "each retry, as for READONLY; if the URL names a replica, point it at the primary"
    ),
}


def answer_code(error: BaseException) -> str | None:
    """The code of the error Redis answered (``"OOM"``, ``"READONLY"``, ...), if it answered one."""
    if not isinstance(error, RedisError):
        return None
    code = getattr(error, "status_code", None)  # redis-py 6 and later
    if not code:
        first = str(error).split(" ", 1)[0]
        code = first if first.isupper() else None
    return code if code in ANSWER_ADVICE else None


def answered(action: str, server: str, error: BaseException) -> str:
    """The message for ``action`` failing because Redis at ``server`` answered ``error``.

    It quotes Redis's answer and, for the errors of `ANSWER_ADVICE`, says what to do.
    """
    code = answer_code(error)
    text = str(error)
    if code and not text.startswith(code):
        text = f"{code} {text}"
    advice = f"; {ANSWER_ADVICE[code]}" if code else ""
    return f"cannot {action}: Redis at {server} answered an error: {text}{advice}"


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


class RedisAnsweredError(TaskiqError):
    """A Redis server answered a command with an error (out of memory, read-only, no permission).

    The message quotes Redis's answer and says what to do about it.
    """

    __template__ = "the Redis server answered an error"


class SendRefusedError(RedisAnsweredError, SendTaskError):
    """A task was not sent: Redis refused it (out of memory, a read-only replica, an ACL rule)."""

    __template__ = "the task could not be sent: the Redis server refused it"


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
    if answer_code(cause):  # up, but refusing us (a password, a dataset still loading)
        return error_type(answered(action, server, cause))
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
    connection: RedisConnection | None = None,
) -> Iterator[None]:
    """Within the block, turn redis-py's errors into taskq's, naming ``server`` (redacted).

    A lost connection becomes `unavailable` ``unavailable_type``; any other Redis error
    (the server answered with one) becomes ``error_type``, and so does text that redis-py
    cannot encode (a lone surrogate). An answer of a server turned replica (``READONLY``)
    also drops ``connection``'s connections, so that the next call reaches the new primary.
    """
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise unavailable(unavailable_type, action, server, exc) from exc
    except RedisError as exc:
        if connection is not None and transient_code(exc) in REPLICA_ANSWERS:
            connection.drop_connections_soon()
        raise error_type(answered(action, server, exc)) from exc
    except UnicodeEncodeError as exc:  # redis-py encodes text as UTF-8: no lone surrogate
        raise error_type(f"cannot {action}: {exc}") from exc
