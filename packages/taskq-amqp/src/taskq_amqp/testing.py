"""Helpers for tests and conformance runs against a real RabbitMQ server (they need pytest).

`amqp_url_or_skip` gives the server of the tests (``TASKQ_AMQP_URL``, default
``amqp://guest:guest@127.0.0.1:5672/``): without one a test is skipped, except under
``CI=true`` where it fails, so that CI never passes by testing nothing. `unique_queue_name`
names the queues of one test or run; `delete_queues` removes them. `relayed` puts a `Relay`
between a client and the server, for a test to cut (an outage) or pause (a silent network)
without touching the shared server.

A ``conftest.py`` imports the ``amqp_url`` fixture (session scope) to use it::

    from taskq_amqp.testing import amqp_url
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlsplit

import pytest

from taskq_amqp.connection import DEFAULT_URL

#: The environment variable naming the RabbitMQ server of tests and conformance runs.
URL_ENV = "TASKQ_AMQP_URL"
#: Seconds `amqp_url_or_skip` waits for the server to answer.
CONNECT_TIMEOUT_S = 5.0
#: Bytes a relay reads at once.
RELAY_CHUNK = 65536


def server_url() -> str:
    """The server named by ``TASKQ_AMQP_URL``, or the default one."""
    return os.environ.get(URL_ENV) or DEFAULT_URL


def amqp_url_or_skip() -> str:
    """The tests' RabbitMQ server if it answers; otherwise skip (fail under ``CI=true``)."""
    url = server_url()
    try:
        asyncio.run(_ping(url))
    except Exception as exc:  # whatever the reason, there is no server to test with
        reason = f"no RabbitMQ server at {url} ({exc!r}); set {URL_ENV} to use another"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires RabbitMQ: {reason}", pytrace=False)
        pytest.skip(reason)
    return url


async def _ping(url: str) -> None:
    import aiormq

    connection = await asyncio.wait_for(aiormq.connect(url), CONNECT_TIMEOUT_S)
    await connection.close()


def unique_queue_name(kind: str = "test") -> str:
    """A queue name no other test or run uses: ``taskq-{kind}-{random hex}``."""
    return f"taskq-{kind}-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """Fixture: the tests' RabbitMQ server; skip without one, fail under ``CI=true``."""
    return amqp_url_or_skip()


def delete_queues(url: str, names: Iterable[str]) -> None:
    """Delete the queues ``names`` at ``url``; do nothing when it cannot be reached."""
    asyncio.run(delete_queues_async(url, names))


async def delete_queues_async(url: str, names: Iterable[str]) -> None:
    """`delete_queues` from a running event loop."""
    import aiormq

    with contextlib.suppress(Exception):  # best effort: a test's queues must not fail the run
        connection = await asyncio.wait_for(aiormq.connect(url), CONNECT_TIMEOUT_S)
        try:
            channel = await connection.channel()
            for name in names:
                await channel.queue_delete(name)
        finally:
            await connection.close()


class Relay:
    """A TCP relay to a RabbitMQ server that a test cuts, pauses and restores.

    `cut` closes its connections and closes new ones as soon as accepted: the network or the
    server is down. `pause` keeps the connections open but passes no byte either way until
    `restore`, which then passes on what was held: a network path that went silent (no
    heartbeats either) and came back.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        #: ``amqp://`` URL of the relay (set by `relayed`).
        self.url = ""
        #: Connections accepted so far, cut or not.
        self.accepted = 0
        self.is_cut = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._pumps: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
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
            asyncio.ensure_future(self._pump(client_r, server_w)),
            asyncio.ensure_future(self._pump(server_r, client_w)),
        }
        self._pumps |= pumps
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        self._pumps -= pumps
        for writer in (client_w, server_w):
            writer.close()
            self._writers.discard(writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(RELAY_CHUNK):
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()


@contextlib.asynccontextmanager
async def relayed(url: str) -> AsyncIterator[Relay]:
    """A started `Relay` to the RabbitMQ server at ``url``; connect to its ``url`` instead.

    The relay is closed (its connections too) when the block ends.
    """
    target = urlsplit(url)
    relay = Relay(target.hostname or "127.0.0.1", target.port or 5672)
    port = await relay.start()
    netloc = target.netloc.rpartition("@")
    credentials = netloc[0] + netloc[1]
    relay.url = target._replace(netloc=f"{credentials}127.0.0.1:{port}").geturl()
    try:
        yield relay
    finally:
        await relay.close()
