"""The connection to RabbitMQ: the checked URL, its redacted name and the reconnect policy.

Every part of the broker (sending, each consumer, the dead letters) runs its calls through
`AmqpConnection.call`: a call that fails on the connection reopens it and is retried with
capped exponential backoff; the first failure of an outage is logged as one warning and the
recovery as another. A call is bounded as a whole where it has a limit (`call_within`): a
server that went silent (a network path that drops everything) is only noticed by the
connection's heartbeat timeout, three times the heartbeat, up to minutes later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import aiormq
from aiormq.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import AMQPConnectionError, ChannelInvalidStateError, InvalidFrameError
from pamqp.exceptions import AMQPInternalError

import taskq.toolkit as toolkit
from taskq_amqp.errors import AccessRefusedError, ConnectionBlockedError

logger = logging.getLogger("taskq.amqp")

_Result = TypeVar("_Result")

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
        self._dropped: set[asyncio.Task[None]] = set()  # closes of dropped connections

    async def call(
        self,
        action: str,
        operation: Callable[[], Awaitable[_Result]],
        give_up_after_s: float | None = None,
    ) -> _Result:
        """Await ``operation()`` as core's reconnect policy does (see `toolkit.Reconnector`).

        A call that aiormq cut off with a ``CancelledError`` as the connection closed (its
        heartbeat timed out) fails on the connection like any other, and is retried.
        """
        return await super().call(action, lambda: lost_if_cut_off(operation), give_up_after_s)

    async def call_within(
        self, action: str, operation: Callable[[], Awaitable[_Result]], timeout_s: float
    ) -> _Result:
        """`call`, retried for ``timeout_s`` at most, attempts that hang included.

        Raises:
            asyncio.TimeoutError: No attempt ended within ``timeout_s`` (the server answers
                nothing).
            Exception: One of `CONNECTION_ERRORS`: the last attempt's error, when attempts
                failed until ``timeout_s`` passed (the server refused it, or is unreachable).
        """
        failures: list[BaseException] = []  # the last one only

        async def attempt() -> _Result:
            try:
                return await operation()
            except CONNECTION_ERRORS as exc:
                failures[:] = [exc]
                raise

        using = self._connection  # the one to give up if no attempt ends
        call = self.call(action, attempt, give_up_after_s=timeout_s)
        try:
            if sys.version_info >= (3, 11):
                async with asyncio.timeout(timeout_s):
                    return await call
            return await asyncio.wait_for(call, timeout_s)  # pragma: no cover - Python 3.10
        except asyncio.TimeoutError as timed_out:
            if failures and failures[0] is not timed_out:
                raise failures[0] from timed_out
            if await is_blocked(self._connection if using is None else using):
                raise ConnectionBlockedError(timeout_s) from timed_out
            self.drop(using, f"{action}: no answer within {timeout_s:g} s")
            raise

    @property
    def is_open(self) -> bool:
        """Whether a connection is open now."""
        return self._connection is not None and not self._connection.is_closed

    def holds(self, channel: AbstractChannel) -> bool:
        """Whether ``channel`` is open on the connection that calls use now."""
        return not channel.is_closed and channel.connection is self._connection

    def drop(self, connection: AbstractConnection | None, why: str) -> None:
        """Give up ``connection``, silent for ``why``: the next call opens another.

        Only while calls still use it: a call that waited on an older one leaves a newer one
        alone. A path that went silent (a NAT or a load balancer that forgot the connection) is
        noticed by the heartbeat only after three heartbeats, minutes by default; every call
        on it would wait its whole timeout until then. The old connection closes in the
        background (its close waits for an answer too, seconds at most), failing the calls
        still waiting on it, which are retried on the new one.
        """
        if connection is None or connection is not self._connection:
            return
        self._connection = None
        if connection.is_closed:
            return
        logger.warning(
            "RabbitMQ at %s did not answer (%s): the next call opens a new connection",
            self.server,
            why,
        )
        closing = asyncio.ensure_future(_close_quietly(connection))
        self._dropped.add(closing)
        closing.add_done_callback(self._dropped.discard)

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
        if connection is not None:
            await _close_quietly(connection)
        if self._dropped:
            await asyncio.wait(self._dropped)

    def reopen(self) -> None:
        """Let calls retry again after `close` (a broker started again)."""
        self.closed = False


async def is_blocked(connection: AbstractConnection | None) -> bool:
    """Whether RabbitMQ blocks ``connection`` now (``connection.blocked``: a resource alarm).

    aiormq's ``ready()`` returns at once on an open connection unless it is blocked.
    """
    if connection is None or connection.is_closed:
        return False
    ready = asyncio.ensure_future(connection.ready())
    await asyncio.sleep(0)  # ready() runs first: it was scheduled before this task resumes
    if ready.done():
        return False
    ready.cancel()
    await asyncio.gather(ready, return_exceptions=True)
    return True


async def _close_quietly(connection: AbstractConnection) -> None:
    if not connection.is_closed:
        with contextlib.suppress(*CONNECTION_ERRORS):
            await connection.close()


async def lost_if_cut_off(operation: Callable[[], Awaitable[_Result]]) -> _Result:
    """``operation()``, with a cancellation that did not come to this task as a lost connection.

    aiormq cancels the replies a connection still awaited when it closes that connection on a
    heartbeat timeout: the caller's task then gets a ``CancelledError`` that no one sent it.
    Python 3.10 cannot tell one from a real cancellation, so it keeps it as one.
    """
    try:
        return await operation()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if sys.version_info < (3, 11) or task is None or task.cancelling():
            raise
        raise ConnectionError("the connection closed before RabbitMQ answered") from None
