"""Riding out a lost connection: retry with capped exponential backoff, log once per outage.

The one reconnect policy of the brokers that talk to a server (Redis, RabbitMQ): a broker runs
its calls through `Reconnector.call`; a loop that cannot be wrapped as one call (a consumer, a
pub/sub reader) uses `Reconnector.pause` and `Reconnector.restored` for the same schedule and
the same two log lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

#: Seconds before the first retry; each next one waits twice as long, up to the cap.
FIRST_RETRY_DELAY_S = 0.05
#: Failures this soon after a reconnection belong to the same outage (other connections
#: dropped with the first one fail on their next use) and are not logged again.
SAME_OUTAGE_S = 10.0

_Result = TypeVar("_Result")


class Reconnector:
    """Runs calls to one server, retrying those that fail on the connection.

    The first failure of an outage is logged as one warning and the recovery as another,
    however many calls fail in between; failures within ``SAME_OUTAGE_S`` of a recovery count
    as the same outage. Once a call gave up after its ``give_up_after_s``, later calls that
    have such a limit try once until the server answers again: a caller does not wait out
    again a time that an outage already took.

    Args:
        service: What the server is, for the log lines (``"Redis"``, ``"RabbitMQ"``).
        server: The server's printable name (its URL without password).
        max_delay_s: The cap on the pause between two attempts.
        errors: The exceptions that mean "the connection failed", worth another attempt;
            anything else is the call's answer.
        logger: Where the two log lines go.
        show_error: How the log line shows the error that started an outage.
    """

    def __init__(
        self,
        service: str,
        server: str,
        max_delay_s: float,
        errors: tuple[type[Exception], ...],
        logger: logging.Logger,
        show_error: Callable[[BaseException], str] = str,
    ) -> None:
        self.service = service
        self.server = server
        self.max_delay_s = max_delay_s
        self.errors = errors
        self.logger = logger
        self.show_error = show_error
        #: Set once the part using it closes: calls stop retrying.
        self.closed = False
        self._down_since: float | None = None
        self._restored_at = -SAME_OUTAGE_S
        self._logged = False
        self._gave_up = False

    async def call(
        self,
        action: str,
        operation: Callable[[], Awaitable[_Result]],
        give_up_after_s: float | None = None,
    ) -> _Result:
        """Await ``operation()`` until it does not fail on the connection; return its result.

        Gives up (re-raising the connection error) once closed, or ``give_up_after_s``
        seconds after the first failure (0: after one attempt), or after one attempt when a
        call of this outage already gave up that way.
        """
        delay = FIRST_RETRY_DELAY_S
        first_failure: float | None = None
        while True:
            try:
                result = await operation()
            except Exception as exc:  # the usual call, which succeeds, pays nothing for this
                error = exc if isinstance(exc, self.errors) else await self.transient(exc)
                if error is None:
                    raise
                first_failure = first_failure or time.monotonic()
                if self.closed or (
                    give_up_after_s is not None and self._gives_up(first_failure, give_up_after_s)
                ):
                    if error is exc:
                        raise
                    raise error from exc
                delay = await self.pause(action, error, delay)
                continue
            if self._gave_up or self._down_since is not None:  # else nothing to note
                self.restored()
            return result

    async def transient(self, error: Exception) -> BaseException | None:
        """The connection error to retry ``error`` as, or None: it is the call's answer.

        Called for a failure that is not one of ``errors``; this one retries none. A subclass
        may take an answer that goes away by itself (a server in a failover) for an outage.
        """
        return None

    def _gives_up(self, first_failure: float, give_up_after_s: float) -> bool:
        """Whether a call failing since ``first_failure`` stops retrying (noted if it waited)."""
        if self._gave_up:
            return True
        if time.monotonic() - first_failure < give_up_after_s:
            return False
        self._gave_up = give_up_after_s > 0
        return True

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
        self._gave_up = False
        if self._down_since is None:
            return
        self._restored_at = now = time.monotonic()
        down_for = now - self._down_since
        self._down_since = None
        if self._logged:
            self.logger.warning(
                "Reconnected to %s at %s after %.1f s", self.service, self.server, down_for
            )

    def _lost(self, action: str, error: BaseException) -> None:
        if self._down_since is not None:
            return
        self._down_since = now = time.monotonic()
        self._logged = now - self._restored_at > SAME_OUTAGE_S
        if self._logged:
            self.logger.warning(
                "Lost the connection to %s at %s while trying to %s (%s); retrying every "
                "%g s at most until it answers",
                self.service,
                self.server,
                action,
                self.show_error(error),
                self.max_delay_s,
            )
