"""Helpers for tests of taskq applications and of brokers, backends and sources.

Tests wait for a condition, never for a duration: a fixed ``sleep`` before an assert is
either too long or flaky. `eventually` polls the condition until it holds; in a plain
(not async) test that drives other processes, `eventually_blocking` does the same without
an event loop (a blocking poll inside a loop would starve what it waits for).
`cancel_until_done` stops a consume loop for sure, even where a client library swallows one
cancellation. `free_port` gives a port for a server a test starts (in another process, say).
`TcpRelay` stands between a client and a server, for a test to cut the network (an outage) or
pause it (a silent path) without touching a shared server.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit

from taskq._cancelling import cancel_until_done

__all__ = ["TcpRelay", "cancel_until_done", "eventually", "eventually_blocking", "free_port"]

#: Bytes a `TcpRelay` reads at once.
RELAY_CHUNK = 65536
#: Seconds `eventually` waits by default: long enough for a loaded CI machine.
DEFAULT_TIMEOUT_S = 10.0
#: Seconds between two checks of the condition.
DEFAULT_INTERVAL_S = 0.01

_T = TypeVar("_T")


async def eventually(
    condition: Callable[[], _T | Awaitable[_T]],
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    interval: float = DEFAULT_INTERVAL_S,
    what: str | None = None,
) -> _T:
    """Wait until ``condition()`` returns a true value, and return that value.

    Args:
        condition: A callable taking no argument, sync or async; checked at once, then
            every ``interval`` seconds.
        timeout: Seconds to wait before failing (default 10).
        interval: Seconds between two checks (default 0.01).
        what: What is awaited, for the failure message (default: the condition's name).

    Returns:
        The first true value ``condition()`` returned.

    Raises:
        AssertionError: ``condition()`` was still false after ``timeout`` seconds.
        ValueError: ``timeout`` is NaN.
    """
    deadline = _deadline(timeout)
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        _fail_after(deadline, timeout, condition, what)
        await asyncio.sleep(interval)


def eventually_blocking(
    condition: Callable[[], _T],
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    interval: float = DEFAULT_INTERVAL_S,
    what: str | None = None,
) -> _T:
    """Block until ``condition()`` returns a true value, and return that value.

    `eventually` for plain tests (no event loop); the same arguments, with a sync
    ``condition``.

    Raises:
        AssertionError: ``condition()`` was still false after ``timeout`` seconds.
        ValueError: ``timeout`` is NaN.
    """
    deadline = _deadline(timeout)
    while True:
        value = condition()
        if value:
            return value
        _fail_after(deadline, timeout, condition, what)
        time.sleep(interval)


def _deadline(timeout: float) -> float:
    """The monotonic time ``timeout`` seconds from now; `ValueError` for a NaN ``timeout``."""
    if timeout != timeout:  # NaN: no time is past it, the wait would never fail
        raise ValueError(f"timeout must be a number of seconds, got {timeout!r}")
    return time.monotonic() + timeout


def _fail_after(deadline: float, timeout: float, condition: object, what: str | None) -> None:
    if time.monotonic() >= deadline:
        described = what or getattr(condition, "__qualname__", repr(condition))
        raise AssertionError(f"still waiting after {timeout} s for {described}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` for a server to bind, kept from other programs for about a minute.

    A port read from a socket bound to port 0 and closed may be handed to another program
    before the server binds it. This one is left in ``TIME_WAIT``: meanwhile the system gives
    it to no socket bound to port 0 and to no outgoing connection, while a server that binds
    it with ``SO_REUSEADDR`` (ZeroMQ, asyncio, uvicorn, ``http.server``, ``redis-server``)
    gets it at once.
    """
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        with socket.create_connection((host, port)):
            accepted, _ = listener.accept()
            accepted.close()  # the side that closes first holds TIME_WAIT: this port's
    return port


class TcpRelay:
    """A TCP relay to the server at ``host:port`` that a test cuts, pauses and restores.

    While cut, its connections are closed and new ones are closed as soon as accepted, so
    every call through it fails on the connection, as when the network or the server is down.
    While paused, no byte passes either way but the connections stay open (a network path
    that went silent); `restore` passes on what was held. `stall` silences the connections
    open now for good, and relays new ones (a NAT or a load balancer that forgot a
    connection). A subclass may watch the bytes of each direction (`pumps`).
    """

    def __init__(self, host: str, port: int) -> None:
        """Relay to ``host:port`` once started."""
        self.host = host
        self.port = port
        #: The URL clients connect to instead of the server's (set by whoever starts it).
        self.url = ""
        #: Connections accepted so far, cut or not.
        self.accepted = 0
        self.is_cut = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._pumps: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._stalled: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def connections(self) -> int:
        """Connections relayed now."""
        return len(self._writers) // 2

    async def start(self) -> int:
        """Listen on a free local port; return it."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def cut(self) -> None:
        """Close every relayed connection; refuse new ones until `restore`."""
        self.is_cut = True
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        for pump in self._pumps:
            pump.cancel()

    def pause(self) -> None:
        """Pass no byte either way until `restore`; connections stay open."""
        self._flowing.clear()

    def stall(self) -> None:
        """Pass no byte of the connections open now, ever again; new connections pass."""
        self._stalled |= self._writers

    def restore(self) -> None:
        """Relay new connections and bytes again (those held by `pause` first)."""
        self.is_cut = False
        self._flowing.set()

    async def close(self) -> None:
        """Stop listening and close every connection."""
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def pumps(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
    ) -> tuple[Coroutine[Any, Any, None], Coroutine[Any, Any, None]]:
        """The two copies of one relayed connection: client to server, server to client."""
        return self.pump(client_r, server_w), self.pump(server_r, client_w)

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy ``reader`` to ``writer`` (holding the bytes while paused) until it ends."""
        while data := await reader.read(RELAY_CHUNK):
            await self.send(writer, data)

    async def send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """Write ``data`` once the relay is not paused (never on a stalled connection)."""
        if writer in self._stalled:
            await asyncio.Future()  # until the connection is cut or the relay closed
        await self._flowing.wait()
        writer.write(data)
        await writer.drain()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.is_cut:
            client_w.close()
            return
        try:
            server_r, server_w = await asyncio.open_connection(self.host, self.port)
        except OSError:
            client_w.close()
            return
        self._writers |= {client_w, server_w}
        pumps = {
            asyncio.ensure_future(pump)
            for pump in self.pumps(client_r, client_w, server_r, server_w)
        }
        self._pumps |= pumps
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        self._pumps -= pumps
        for writer in (client_w, server_w):
            writer.close()
            self._writers.discard(writer)
            self._stalled.discard(writer)


_Relay = TypeVar("_Relay", bound=TcpRelay)


@contextlib.asynccontextmanager
async def relay_in_front(
    relay_type: type[_Relay], url: str, default_port: int
) -> AsyncIterator[_Relay]:
    """A started relay of ``relay_type`` to the server at ``url``; connect to its ``url``.

    Its ``url`` is ``url`` with the relay's host and port (``default_port``: the server's
    when ``url`` names none). The relay is closed (its connections too) when the block ends.
    """
    target = urlsplit(url)
    relay = relay_type(target.hostname or "127.0.0.1", target.port or default_port)
    port = await relay.start()
    credentials = "".join(target.netloc.rpartition("@")[:2])
    relay.url = target._replace(netloc=f"{credentials}127.0.0.1:{port}").geturl()
    try:
        yield relay
    finally:
        await relay.close()
