"""The one way taskq's Redis parts reach a server: URL checks, the pool, the redacted name.

The broker, the result backend and the schedule source each hold a `RedisConnection`: it
checks the URL and the options when the part is made, opens one redis-py
``BlockingConnectionPool`` on first use and closes it on `RedisConnection.close`. Messages and
logs name the server by `redacted` URL, never with its password. A hot path whose calls go
one at a time (the broker's sends) uses a `SerialConnection` of its own instead of the pool.
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskq.toolkit import check_count
from taskq_redis.deadline import CallDeadline

#: The server every Redis part uses when given no URL.
DEFAULT_URL = "redis://127.0.0.1:6379/0"
#: Seconds a `SerialConnection` call waits for Redis's reply (and for a connection to open)
#: when no ``socket_timeout`` is given: redis-py's own default for a command.
DEFAULT_REPLY_TIMEOUT_S = 5.0

_Result = TypeVar("_Result")
#: The URL schemes redis-py accepts: plain TCP, TLS and a Unix socket.
URL_SCHEMES = ("redis", "rediss", "unix")
#: Options of redis-py's ``BlockingConnectionPool`` that are not a connection's: the wait for a
#: free connection, the queue of free connections.
POOL_OPTIONS = frozenset({"timeout", "queue_class"})
#: taskiq-redis's arguments that taskq's Redis parts take under another name, and that name:
#: given to a part, they would reach redis-py as connection options.
TASKIQ_REDIS_NAMES = {
    "redis_url": "url",
    "max_connection_pool_size": "max_connections",
    "xread_block": "block_ms",
    "xread_count": "batch_size",
    "maxlen": "max_stream_length (trimmed approximately, as taskiq-redis's default)",
    "idle_timeout": "lease_s (seconds, not milliseconds)",
    "result_ex_time": "result_ttl (seconds)",
    "result_px_time": "result_ttl (seconds, not milliseconds)",
    "prefix_str": "prefix",
}


def check_url(url: str) -> None:
    """Refuse a URL that does not name a Redis server.

    Raises:
        ValueError: The scheme is not ``redis://``, ``rediss://`` or ``unix://``.
    """
    if urlsplit(url).scheme not in URL_SCHEMES:
        raise ValueError(f"not a Redis URL (redis://, rediss:// or unix://): {url!r}")


def check_options(url: str, owner: str, options: dict[str, Any]) -> None:
    """Refuse an option that neither redis-py's pool nor its connections for ``url`` take.

    redis-py would raise only when it opens its first connection, in a worker's first call
    and from deep inside itself; here the option is named when the part is made. Nothing
    connects: the connection object is made and dropped.

    Raises:
        TypeError: ``options`` holds a name redis-py does not know (a misspelt
            ``socket_timout``, or another library's argument such as ``result_ex_time``,
            whose name here the message gives).
    """
    for name in options.keys() & TASKIQ_REDIS_NAMES.keys():
        raise TypeError(
            f"{owner} was given {name!r}, an argument of taskiq-redis: "
            f"here it is {TASKIQ_REDIS_NAMES[name]}"
        )
    try:
        pool = aioredis.BlockingConnectionPool.from_url(url, **options)
        pool.connection_class(**pool.connection_kwargs)
    except TypeError as error:
        raise TypeError(
            f"{owner} was given an option that is neither its own nor a redis-py connection "
            f"option: {error}"
        ) from None


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()


class RedisConnection:
    """A Redis server as one part of taskq uses it: a checked URL and a lazily opened pool.

    Args:
        url: The server, ``redis://[[user]:[password]@]host[:port][/db]``, ``rediss://`` for
            TLS or ``unix://``.
        owner: The name of the part (``"RedisStreamBroker"``, ...), for error messages.
        max_connections: Most connections of the pool (at least 2: a waiting read or
            subscription holds one); when all are busy a call waits for one. None: redis-py's
            default.
        **connection_kwargs: Passed to redis-py's ``BlockingConnectionPool`` (``password``,
            ``socket_timeout``, ``ssl_cert_reqs``, ...). taskq carries bytes, so
            ``decode_responses`` must stay false.

    Raises:
        ValueError: A bad URL scheme, ``max_connections`` or ``decode_responses=True``.
        TypeError: An option redis-py does not take (see `check_options`).
    """

    def __init__(
        self, url: str, owner: str, max_connections: int | None = None, **connection_kwargs: Any
    ) -> None:
        check_url(url)
        if max_connections is not None:  # a waiting read holds one
            check_count("max_connections", max_connections, minimum=2, alternative="or None")
        if connection_kwargs.get("decode_responses"):
            raise ValueError(f"{owner} carries bytes: decode_responses must be False")
        check_options(url, owner, connection_kwargs)
        self.url = url
        self.server = redacted(url)
        self.max_connections = max_connections
        self.connection_kwargs = connection_kwargs
        self._client: aioredis.Redis | None = None
        self._serials: weakref.WeakSet[SerialConnection] = weakref.WeakSet()
        self._dropping: set[asyncio.Task[None]] = set()

    @property
    def is_open(self) -> bool:
        """Whether the pool is open (a client was asked for since the last `close`)."""
        return self._client is not None

    @property
    def client(self) -> aioredis.Redis:
        """The redis-py client on the pool, opened on first use."""
        if self._client is None:
            options = dict(self.connection_kwargs)
            if self.max_connections is not None:
                options["max_connections"] = self.max_connections
            pool = aioredis.BlockingConnectionPool.from_url(self.url, **options)
            self._client = aioredis.Redis.from_pool(pool)
        return self._client

    async def close(self) -> None:
        """Close the pool and its connections (the next `client` opens a new one)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def drop_connections(self) -> None:
        """Drop the open connections, so that the next calls connect anew (after a failover).

        The pool's idle connections are closed now (a busy one is closed once it answers a
        write with ``READONLY`` and is given back); each `SerialConnection` made from this one
        reconnects before its next call. The address is resolved again on connecting: behind a
        DNS name or a proxy the new connections reach the new primary.
        """
        for serial in self._serials:
            serial.reconnect_before_next_call()
        if self._client is not None:
            await self._client.connection_pool.disconnect(inuse_connections=False)

    def drop_connections_soon(self) -> None:
        """`drop_connections` in a task of its own, for a caller that cannot wait for it."""
        task = asyncio.ensure_future(self.drop_connections())
        self._dropping.add(task)
        task.add_done_callback(self._dropping.discard)


class SerialConnection:
    """One connection of its own to a `RedisConnection`'s server, for calls made one at a time.

    redis-py bounds every command by ``socket_timeout`` with an ``asyncio.wait_for`` (before
    Python 3.12 a task of its own, and more turns of the event loop) plus a timer on the
    reply, and the shared pool takes a lock and a timer to lend a connection: together about
    half the CPU of a lone ``XADD``. This connection has no ``socket_timeout`` and is held,
    not lent; `call` bounds a whole call (one command or a pipeline) by a deadline instead,
    all calls sharing one timer (a `CallDeadline`), so a server that stops answering is still
    noticed within the same ``socket_timeout`` (default `DEFAULT_REPLY_TIMEOUT_S`): the
    connection is dropped and `RedisTimeoutError` raised, as redis-py does. Calls must not
    overlap (a `BatchSender` makes one at a time; an overlapping call gets a timer of its
    own); a pipeline takes a second connection of the same kind.
    """

    def __init__(self, connection: RedisConnection) -> None:
        """Connect to ``connection``'s server with its options, on first use."""
        options = {
            name: value
            for name, value in connection.connection_kwargs.items()
            if name not in POOL_OPTIONS  # a plain pool of one connection would hand them on
        }
        timeout = options.pop("socket_timeout", DEFAULT_REPLY_TIMEOUT_S)
        options.setdefault("socket_connect_timeout", timeout)
        #: Seconds a call waits for its reply (None: as long as it takes).
        self.timeout_s: float | None = timeout
        self._url = connection.url
        self._options = options
        self._client: aioredis.Redis | None = None
        self._deadline = CallDeadline()  # one call at a time: one deadline, one timer
        self._stale = False
        connection._serials.add(self)

    @property
    def client(self) -> aioredis.Redis:
        """The redis-py client on the connection (opened on first use)."""
        if self._client is None:
            pool = aioredis.ConnectionPool.from_url(self._url, socket_timeout=None, **self._options)
            self._client = aioredis.Redis(connection_pool=pool, single_connection_client=True)
        return self._client

    async def call(
        self, operation: Callable[[aioredis.Redis], Awaitable[_Result]], wait_s: float = 0.0
    ) -> _Result:
        """Await ``operation(client)`` within ``timeout_s`` (plus ``wait_s``); return its result.

        ``wait_s``: how long the server itself may hold the reply back (a blocking read's
        ``BLOCK``).

        Raises:
            RedisTimeoutError: No reply in time (the connection is dropped: redis-py closes a
                connection whose command was cancelled).
        """
        if self._stale:
            await self._disconnect()
        client, timeout = self.client, self.timeout_s
        if timeout is None:
            return await operation(client)
        timeout += wait_s
        deadline = self._deadline
        if sys.version_info >= (3, 11) and deadline.start(timeout):
            try:
                return await operation(client)
            except asyncio.CancelledError as exc:
                if deadline.finish():
                    raise RedisTimeoutError(f"no reply from Redis within {timeout:g} s") from exc
                raise
            finally:
                deadline.finish()
        return await _within(operation(client), timeout)  # pragma: no cover - 3.10, overlaps

    def execute(self, commands: Sequence[bytes] | Sequence[Sequence[Any]]) -> Awaitable[list[Any]]:
        """Send ``commands`` in one write and return their raw replies, as `call` bounds a call.

        The replies are Redis's own (no redis-py reply callbacks); the commands skip redis-py's
        per-command client machinery, a third of the CPU of a lone ``XADD``. ``commands``:
        each a sequence of arguments, or each a whole command already in the wire protocol
        (bytes, see `CommandPrefix`).

        Raises:
            ResponseError: The first error reply (after every reply was read).
            RedisTimeoutError: No reply in time (the connection is dropped).
        """
        # a plain function handing back the call's coroutine: one await less per call
        return self.call(lambda client: execute_raw(client, commands))

    def reconnect_before_next_call(self) -> None:
        """Have the next call close the connection first and open a new one."""
        self._stale = self._client is not None

    async def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        self._deadline.close()
        await self._disconnect()

    async def _disconnect(self) -> None:
        self._stale = False
        client, self._client = self._client, None
        if client is not None:
            await client.aclose(close_connection_pool=True)


async def _within(call: Awaitable[_Result], timeout: float) -> _Result:
    """Await ``call`` within ``timeout`` seconds, or raise `RedisTimeoutError`."""
    try:
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(timeout):
                return await call
        return await asyncio.wait_for(call, timeout)  # pragma: no cover
    except asyncio.TimeoutError as exc:
        raise RedisTimeoutError(f"no reply from Redis within {timeout:g} s") from exc


async def execute_raw(
    client: aioredis.Redis, commands: Sequence[bytes] | Sequence[Sequence[Any]]
) -> list[Any]:
    """Write ``commands`` on a single-connection ``client``'s connection; read every reply.

    ``commands``: each a sequence of arguments, or each a whole command in the wire protocol
    (bytes). A call cut off (a lost connection, a timeout, a cancellation) drops the
    connection, whose replies would otherwise be out of step; the next call opens it again.

    Raises:
        ResponseError: The first error reply, once every reply was read.
    """
    if client.connection is None:
        await client.initialize()
    connection = client.connection
    assert connection is not None  # a single-connection client holds one once initialized
    replies: list[Any] = []
    error: ResponseError | None = None
    try:
        if commands and isinstance(commands[0], bytes):  # packed already
            packed = b"".join(commands)  # type: ignore[arg-type]  # each is bytes, as the first
            await connection.send_packed_command([packed], False)
        else:
            await connection.send_packed_command(connection.pack_commands(commands), False)
        for _ in commands:
            try:
                replies.append(await connection.read_response())
            except ResponseError as exc:  # the next replies are still read: in step
                error = error or exc
                replies.append(exc)
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
    if error is not None:
        raise error
    return replies
