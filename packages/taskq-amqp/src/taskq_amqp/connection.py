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
from urllib.parse import unquote, urlsplit

import aiormq
from aiormq.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import AMQPConnectionError, ChannelInvalidStateError, InvalidFrameError
from pamqp.exceptions import AMQPInternalError

import taskq.toolkit as toolkit
from taskq_amqp.errors import AccessRefusedError

logger = logging.getLogger("taskq.amqp")

#: The server the broker uses when given no URL.
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
#: The URL schemes: plain TCP and TLS.
URL_SCHEMES = ("amqp", "amqps")
#: Errors that mean "the connection failed", worth another attempt on a new connection.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    AMQPConnectionError,
    ChannelInvalidStateError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)
#: Seconds before the first retry; each next one waits twice as long, up to the cap.
FIRST_RETRY_DELAY_S = toolkit.FIRST_RETRY_DELAY_S
#: Seconds one connection attempt may take.
CONNECT_TIMEOUT_S = 10.0


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


class AmqpConnection(toolkit.Reconnector):
    """One connection to RabbitMQ, opened on first use and again after it is lost.

    Its calls (`call`, `pause`, `restored`) follow core's reconnect policy; `close` stops
    their retries.

    Args:
        url: The server, ``amqp://user:password@host:port/vhost`` (``amqps://`` for TLS).
        max_delay_s: The cap on the pause between two attempts of a failing call.
    """

    def __init__(self, url: str, max_delay_s: float) -> None:
        check_url(url)
        super().__init__("RabbitMQ", redacted(url), max_delay_s, CONNECTION_ERRORS, logger, repr)
        self.url = url
        self._connection: AbstractConnection | None = None
        self._opening: asyncio.Lock | None = None

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
                self._connection = await self._connect()
            return self._connection

    async def _connect(self) -> AbstractConnection:
        """Open a connection; a vhost RabbitMQ refuses to open is an `AccessRefusedError`.

        aiormq reports that refusal as an unexpected frame (the server's ``connection.close``
        where ``connection.open-ok`` was due), without the server's reason: an
        `InvalidFrameError` (aiormq 7) or pamqp's `AMQPInternalError` (aiormq 6).
        """
        try:
            return await asyncio.wait_for(aiormq.connect(self.url), CONNECT_TIMEOUT_S)
        except (InvalidFrameError, AMQPInternalError) as exc:
            if "Connection.Close" not in str(exc):
                raise
            parts = urlsplit(self.url)
            vhost = unquote(parts.path[1:]) or "/"
            raise AccessRefusedError(
                f"RabbitMQ refused to open the vhost {vhost!r} for the user "
                f"{unquote(parts.username or 'guest')!r}: it does not exist, or the user may "
                "not use it"
            ) from exc

    async def channel(self, publisher_confirms: bool = False) -> AbstractChannel:
        """A new channel on the open connection."""
        connection = await self.connection()
        return await connection.channel(publisher_confirms=publisher_confirms)

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
