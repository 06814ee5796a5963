"""The one way taskq's Redis parts reach a server: URL checks, the pool, the redacted name.

The broker, the result backend and the schedule source each hold a `RedisConnection`: it
checks the URL and the options when the part is made, opens one redis-py
``BlockingConnectionPool`` on first use and closes it on `RedisConnection.close`. Messages and
logs name the server by `redacted` URL, never with its password.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis

#: The server every Redis part uses when given no URL.
DEFAULT_URL = "redis://127.0.0.1:6379/0"
#: The URL schemes redis-py accepts: plain TCP, TLS and a Unix socket.
URL_SCHEMES = ("redis", "rediss", "unix")


def check_url(url: str) -> None:
    """Refuse a URL that does not name a Redis server.

    Raises:
        ValueError: The scheme is not ``redis://``, ``rediss://`` or ``unix://``.
    """
    if urlsplit(url).scheme not in URL_SCHEMES:
        raise ValueError(f"not a Redis URL (redis://, rediss:// or unix://): {url!r}")


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
    """

    def __init__(
        self, url: str, owner: str, max_connections: int | None = None, **connection_kwargs: Any
    ) -> None:
        check_url(url)
        if max_connections is not None and max_connections < 2:
            raise ValueError("max_connections must be at least 2 (a waiting read holds one)")
        if connection_kwargs.get("decode_responses"):
            raise ValueError(f"{owner} carries bytes: decode_responses must be False")
        self.url = url
        self.server = redacted(url)
        self.max_connections = max_connections
        self.connection_kwargs = connection_kwargs
        self._client: aioredis.Redis | None = None

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
