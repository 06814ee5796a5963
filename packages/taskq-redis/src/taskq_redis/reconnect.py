"""Riding out a lost connection to Redis: core's reconnect policy with Redis's errors.

The one reconnect policy of taskq's Redis parts: the broker runs its calls through
`Reconnector.call`; a loop that cannot be wrapped as one call (a pub/sub reader) uses
`Reconnector.pause` and `Reconnector.restored` for the same schedule and the same log lines.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

import taskq.toolkit as toolkit

logger = logging.getLogger("taskq.redis")

#: Errors that mean "the connection failed", worth another attempt (a Redis still loading its
#: data after a restart raises a ConnectionError too). Anything else is the command's answer.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
)
#: Seconds before the first retry; each next one waits twice as long, up to the cap.
FIRST_RETRY_DELAY_S = toolkit.FIRST_RETRY_DELAY_S
#: The cap on the pause between two attempts, unless a part is told otherwise.
DEFAULT_MAX_DELAY_S = 5.0


class Reconnector(toolkit.Reconnector):
    """Runs a part's Redis calls, retrying those that fail on the connection.

    redis-py opens a new connection for the next attempt by itself. The first failure of an
    outage is logged as one warning and the recovery as another, however many calls fail in
    between.
    """

    def __init__(self, server: str, max_delay_s: float) -> None:
        """Retry calls to ``server`` (a printable name), waiting at most ``max_delay_s``."""
        super().__init__("Redis", server, max_delay_s, CONNECTION_ERRORS, logger)


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
