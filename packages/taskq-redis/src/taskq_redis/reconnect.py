"""Riding out a lost connection to Redis: core's reconnect policy with Redis's errors.

The one reconnect policy of taskq's Redis parts: the broker runs its calls through
`Reconnector.call`; a loop that cannot be wrapped as one call (a pub/sub reader) uses
`Reconnector.pause` and `Reconnector.restored` for the same schedule and the same log lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

import taskq.toolkit as toolkit

logger = logging.getLogger("taskq.redis")


class TransientAnswerError(RedisConnectionError):
    """Redis answered an error that goes away by itself (`TRANSIENT_ANSWERS`): worth another try.

    A connection error, so that every part retries it as it rides out an outage; ``answer`` is
    the error Redis answered, ``status_code`` its code.
    """

    def __init__(self, answer: RedisError, code: str) -> None:
        super().__init__(str(answer), status_code=code)
        self.answer = answer


#: Errors that mean "the connection failed", worth another attempt (a Redis still loading its
#: data after a restart raises a ConnectionError too, and `TransientAnswerError` is one).
#: Anything else is the command's answer.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
)
#: Seconds before the first retry; each next one waits twice as long, up to the cap.
FIRST_RETRY_DELAY_S = toolkit.FIRST_RETRY_DELAY_S
#: The cap on the pause between two attempts, unless a part is told otherwise.
DEFAULT_MAX_DELAY_S = 5.0


#: Answers of a server that is the wrong one for now: it turned into a replica in a failover
#: (``READONLY`` to a write; ``UNBLOCKED`` to a read waiting when it turned; ``MASTERDOWN``
#: to a read, from a replica not yet linked to its primary that serves no stale data). The
#: pool's connections are dropped so that new ones reach the new primary behind the same
#: address.
REPLICA_ANSWERS = frozenset({"READONLY", "UNBLOCKED", "MASTERDOWN"})
#: Answers that go away by themselves, retried as an outage is: those of `REPLICA_ANSWERS`
#: and a script running too long (``BUSY``). ``LOADING`` is one too, but redis-py raises it as
#: a connection error already. ``OOM`` is not: see docs/redis.md, "Errors Redis answers".
TRANSIENT_ANSWERS = REPLICA_ANSWERS | {"BUSY"}


def transient_code(error: BaseException) -> str | None:
    """The code of ``error`` if Redis answered one of `TRANSIENT_ANSWERS`, else None."""
    if not isinstance(error, RedisError) or isinstance(error, RedisConnectionError):
        return None
    code = getattr(error, "status_code", None) or str(error).split(" ", 1)[0]
    return code if code in TRANSIENT_ANSWERS else None


def shown(error: BaseException) -> str:
    """How a log line shows the error that started an outage (an answer with its code)."""
    if isinstance(error, TransientAnswerError):
        return f"it answered {error.status_code} {error}"
    return str(error)


class Reconnector(toolkit.Reconnector):
    """Runs a part's Redis calls, retrying those that fail on the connection.

    redis-py opens a new connection for the next attempt by itself. An answer of
    `TRANSIENT_ANSWERS` is retried the same way; one of `REPLICA_ANSWERS` first drops the
    connections (``drop_connections``, a `RedisConnection`'s) so that the next attempt reaches
    the new primary. The first failure of an outage is logged as one warning and the recovery
    as another, however many calls fail in between.
    """

    def __init__(
        self,
        server: str,
        max_delay_s: float,
        drop_connections: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Retry calls to ``server`` (a printable name), waiting at most ``max_delay_s``."""
        super().__init__("Redis", server, max_delay_s, CONNECTION_ERRORS, logger, shown)
        self.drop_connections = drop_connections

    async def transient(self, error: Exception) -> BaseException | None:
        """A `TransientAnswerError` for an answer of `TRANSIENT_ANSWERS`, else None.

        An answer of `REPLICA_ANSWERS` first drops the connections.
        """
        code = transient_code(error)
        if code is None or not isinstance(error, RedisError):
            return None
        if code in REPLICA_ANSWERS and self.drop_connections is not None:
            await self.drop_connections()
        return TransientAnswerError(error, code)


#: Seconds between two log lines about the same error Redis keeps answering a loop.
ANSWER_LOG_INTERVAL_S = 60.0


class AnswerLog:
    """Logs the errors Redis answers a background loop: once per condition, not per call.

    Redis up but refusing (out of memory, a read-only replica, a missing permission) makes
    every call of a loop fail the same way: the first failure is logged as an error, the same
    error again at most once every ``ANSWER_LOG_INTERVAL_S`` while it lasts, and the first
    success after it as a warning.
    """

    def __init__(self, server: str, what: str) -> None:
        """Log for the loop doing ``what`` (a verb phrase) against ``server`` (redacted)."""
        self.server = server
        self.what = what
        self._failing: str | None = None
        self._logged_at = 0.0

    def failed(self, error: BaseException, consequence: str) -> None:
        """Note that Redis answered ``error``; ``consequence`` says what happens meanwhile."""
        from taskq_redis.errors import answered  # errors imports this module

        text = str(error)
        now = time.monotonic()
        if text == self._failing and now - self._logged_at < ANSWER_LOG_INTERVAL_S:
            return
        self._failing, self._logged_at = text, now
        logger.error("%s; %s", answered(self.what, self.server, error), consequence)

    def succeeded(self) -> None:
        """Note a call that Redis accepted (logged if a failure was)."""
        if self._failing is None:
            return
        self._failing = None
        logger.warning("Redis at %s accepts again: %s works", self.server, self.what)
