"""Riding out a lost connection: retry with capped exponential backoff, log once per outage.

The one reconnect policy of taskq's Redis parts: the broker runs its calls through
`Reconnector.call`; a loop that cannot be wrapped as one call (a pub/sub reader) uses
`Reconnector.pause` and `Reconnector.restored` for the same schedule and the same log lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("taskq.redis")

#: Errors that mean "the connection failed", worth another attempt (a Redis still loading its
#: data after a restart raises a ConnectionError too). Anything else is the command's answer.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
)
#: Seconds before the first retry; each next one waits twice as long, up to the cap.
FIRST_RETRY_DELAY_S = 0.05
#: The cap on the pause between two attempts, unless a part is told otherwise.
DEFAULT_MAX_DELAY_S = 5.0
#: Failures this soon after a reconnection belong to the same outage (other pooled connections
#: dropped with the first one fail on their next use) and are not logged again.
SAME_OUTAGE_S = 10.0

_Result = TypeVar("_Result")


class Reconnector:
    """Runs a part's Redis calls, retrying those that fail on the connection.

    redis-py opens a new connection for the next attempt by itself. The first failure of an
    outage is logged as one warning and the recovery as another, however many calls fail in
    between; failures within ``SAME_OUTAGE_S`` of a recovery count as the same outage.
    """

    def __init__(self, server: str, max_delay_s: float) -> None:
        """Retry calls to ``server`` (a printable name), waiting at most ``max_delay_s``."""
        self.server = server
        self.max_delay_s = max_delay_s
        self.closed = False
        self._down_since: float | None = None
        self._restored_at = -SAME_OUTAGE_S
        self._logged = False

    async def call(
        self,
        action: str,
        operation: Callable[[], Awaitable[_Result]],
        give_up_after_s: float | None = None,
    ) -> _Result:
        """Await ``operation()`` until it does not fail on the connection, and return its result.

        Gives up (re-raising the connection error) once the part is closed, or when
        ``give_up_after_s`` seconds have passed since the first failure.
        """
        delay = FIRST_RETRY_DELAY_S
        first_failure: float | None = None
        while True:
            try:
                result = await operation()
            except CONNECTION_ERRORS as exc:
                now = time.monotonic()
                first_failure = first_failure or now
                if self.closed or (
                    give_up_after_s is not None and now - first_failure >= give_up_after_s
                ):
                    raise
                delay = await self.pause(action, exc, delay)
                continue
            self.restored()
            return result

    async def pause(self, action: str, error: BaseException, delay_s: float) -> float:
        """Note a failure of ``action`` (logged once per outage), wait ``delay_s``, return the next.

        Start with ``FIRST_RETRY_DELAY_S``; the delay returned is twice ``delay_s``, capped at
        ``max_delay_s``.
        """
        self._lost(action, error)
        await asyncio.sleep(delay_s)
        return min(delay_s * 2, self.max_delay_s)

    def restored(self) -> None:
        """Note that the server answers (logged when an outage was logged)."""
        if self._down_since is not None:
            self._restored()

    def _lost(self, action: str, error: BaseException) -> None:
        if self._down_since is not None:
            return
        self._down_since = now = time.monotonic()
        self._logged = now - self._restored_at > SAME_OUTAGE_S
        if self._logged:
            logger.warning(
                "Lost the connection to Redis at %s while trying to %s (%s); retrying every "
                "%g s at most until it answers",
                self.server,
                action,
                error,
                self.max_delay_s,
            )

    def _restored(self) -> None:
        self._restored_at = now = time.monotonic()
        down_for = now - (self._down_since or now)
        self._down_since = None
        if self._logged:
            logger.warning("Reconnected to Redis at %s after %.1f s", self.server, down_for)
