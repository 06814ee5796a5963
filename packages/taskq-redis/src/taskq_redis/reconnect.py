"""Riding out a lost connection to Redis: core's reconnect policy with Redis's errors.

The one reconnect policy of taskq's Redis parts: the broker runs its calls through
`Reconnector.call`; a loop that cannot be wrapped as one call (a pub/sub reader) uses
`Reconnector.pause` and `Reconnector.restored` for the same schedule and the same log lines.
"""

from __future__ import annotations

import logging

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
