"""The connection to RabbitMQ: the checked URL, its redacted name and the reconnect policy.

Every part of the broker (sending, each consumer, the dead letters) runs its calls through
`AmqpConnection.call`: a call that fails on the connection reopens it and is retried with
capped exponential backoff; the first failure of an outage is logged as one warning and the
recovery as another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

import aiormq
from aiormq.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import AMQPConnectionError, ChannelInvalidStateError

logger = logging.getLogger("taskq.amqp")

#: The server the broker uses when given no URL.
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
#: The URL schemes: plain TCP and TLS.
URL_SCHEMES = ("amqp", "amqps")
#: Errors that mean "the connection failed", worth another attempt on a new connection.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    AMQPConnectionError,
    ChannelInvalidStateError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)
#: Seconds before the first retry; each next one waits twice as long, up to the cap.
FIRST_RETRY_DELAY_S = 0.05
#: Failures this soon after a reconnection belong to the same outage and are not logged again.
SAME_OUTAGE_S = 10.0
#: Seconds one connection attempt may take.
CONNECT_TIMEOUT_S = 10.0

_Result = TypeVar("_Result")


def check_url(url: str) -> None:
    """Refuse a URL that does not name a RabbitMQ server.

    Raises:
        ValueError: The scheme is not ``amqp://`` or ``amqps://``.
    """
    if urlsplit(url).scheme not in URL_SCHEMES:
        raise ValueError(f"not an AMQP URL (amqp:// or amqps://): {url!r}")


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()


class AmqpConnection:
    """One connection to RabbitMQ, opened on first use and again after it is lost.

    Args:
        url: The server, ``amqp://user:password@host:port/vhost`` (``amqps://`` for TLS).
        max_delay_s: The cap on the pause between two attempts of a failing call.
    """

    def __init__(self, url: str, max_delay_s: float) -> None:
        check_url(url)
        self.url = url
        self.server = redacted(url)
        self.max_delay_s = max_delay_s
        #: Set by `close`: calls stop retrying.
        self.closed = False
        self._connection: AbstractConnection | None = None
        self._opening: asyncio.Lock | None = None
        self._down_since: float | None = None
        self._restored_at = -SAME_OUTAGE_S
        self._logged = False

    @property
    def is_open(self) -> bool:
        """Whether a connection is open now."""
        return self._connection is not None and not self._connection.is_closed

    async def connection(self) -> AbstractConnection:
        """The open connection, opened (once, for concurrent callers) when there is none."""
        if self._connection is not None and not self._connection.is_closed:
            return self._connection
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._connection is None or self._connection.is_closed:
                self._connection = await asyncio.wait_for(
                    aiormq.connect(self.url), CONNECT_TIMEOUT_S
                )
            return self._connection

    async def channel(self, publisher_confirms: bool = False) -> AbstractChannel:
        """A new channel on the open connection."""
        connection = await self.connection()
        return await connection.channel(publisher_confirms=publisher_confirms)

    async def call(
        self,
        action: str,
        operation: Callable[[], Awaitable[_Result]],
        give_up_after_s: float | None = None,
    ) -> _Result:
        """Await ``operation()`` until it does not fail on the connection; return its result.

        Gives up (re-raising the connection error) once closed, or ``give_up_after_s``
        seconds after the first failure.
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

        The delay returned is twice ``delay_s``, capped at ``max_delay_s``.
        """
        self._lost(action, error)
        await asyncio.sleep(delay_s)
        return min(delay_s * 2, self.max_delay_s)

    def restored(self) -> None:
        """Note that the server answers (logged when an outage was logged)."""
        if self._down_since is None:
            return
        self._restored_at = now = time.monotonic()
        down_for = now - self._down_since
        self._down_since = None
        if self._logged:
            logger.warning("Reconnected to RabbitMQ at %s after %.1f s", self.server, down_for)

    def _lost(self, action: str, error: BaseException) -> None:
        if self._down_since is not None:
            return
        self._down_since = now = time.monotonic()
        self._logged = now - self._restored_at > SAME_OUTAGE_S
        if self._logged:
            logger.warning(
                "Lost the connection to RabbitMQ at %s while trying to %s (%r); retrying every "
                "%g s at most until it answers",
                self.server,
                action,
                error,
                self.max_delay_s,
            )

    async def close(self) -> None:
        """Close the connection; calls stop retrying."""
        self.closed = True
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await connection.close()

    def reopen(self) -> None:
        """Let calls retry again after `close` (a broker started again)."""
        self.closed = False
