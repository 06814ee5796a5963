"""Helpers for tests and conformance runs against a real Redis server (they need pytest).

`redis_url_or_skip` gives the server of the tests (``TASKQ_REDIS_URL``, default
``redis://127.0.0.1:6379/0``): without one a test is skipped, except under ``CI=true`` where
it fails, so that CI never passes by testing nothing. `unique_prefix` names the keys of one
test (`temporary_prefix` also deletes them afterwards), `run_prefix` those of one
conformance run (shared with its child processes) and `delete_keys` removes them.
`relayed` puts a `Relay` between a client and the server, for a test to cut and restore: an
outage without touching the shared server. `throwaway_server` starts a ``redis-server`` of a
test's own, whose configuration it may change (out of memory, passwords, ACL users).

Two fixtures wrap them; a ``conftest.py`` imports them to use them::

    from taskq_redis.testing import redis_prefix, redis_url

``redis_url`` (session scope) is the server or a skip, ``redis_prefix`` a `temporary_prefix`
of the test, ``own_redis_url`` the URL of a `throwaway_server` of the test.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from taskq.testing import RELAY_CHUNK, TcpRelay, free_port, relay_in_front
from taskq_redis.connection import DEFAULT_URL

if TYPE_CHECKING:
    from taskq.acks import AckableMessage
    from taskq_redis.broker import RedisStreamBroker

#: The environment variable naming the Redis server of tests and conformance runs.
URL_ENV = "TASKQ_REDIS_URL"
#: Keys deleted per ``DEL`` (and scanned per ``SCAN`` step) by `delete_keys`.
DELETE_BATCH = 1000
#: Seconds `redis_url_or_skip` waits for the server to answer.
PING_TIMEOUT_S = 2.0


def server_url() -> str:
    """The server named by ``TASKQ_REDIS_URL``, or the default one."""
    return os.environ.get(URL_ENV) or DEFAULT_URL


def redis_url_or_skip() -> str:
    """The tests' Redis server if it answers; otherwise skip the test (fail under ``CI=true``).

    Call it from a (session-scoped) pytest fixture, as `redis_url` does.
    """
    import redis

    url = server_url()
    timeout = PING_TIMEOUT_S
    try:
        with redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        ) as client:
            client.ping()
    except redis.RedisError as exc:
        reason = f"no Redis server at {url} ({exc}); set {URL_ENV} to use another"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires Redis: {reason}", pytrace=False)
        pytest.skip(reason)
    return url


def redis_server_or_skip() -> str:
    """The path of ``redis-server``; skip the test without one (fail under ``CI=true``)."""
    path = shutil.which("redis-server")
    if path is None:
        reason = "no redis-server on PATH to start a throwaway server"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires it: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


@contextlib.contextmanager
def throwaway_server(*options: str) -> Iterator[str]:
    """Start a ``redis-server`` of the caller's own on a free port; yield its URL; kill it.

    It keeps nothing on disk; ``options`` are more of its command-line options
    (``"--maxmemory", "2mb"``). Skips the test without ``redis-server`` (fails under
    ``CI=true``).
    """
    server = redis_server_or_skip()
    import redis

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="taskq-redis-") as directory:
        command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", directory, *options]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            _wait_for_ping(redis.Redis(port=port), process)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.kill()
            process.wait()


def _wait_for_ping(client: Any, process: subprocess.Popen[bytes]) -> None:
    import redis

    deadline = time.monotonic() + PING_TIMEOUT_S * 5
    with client:
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


@pytest.fixture
def own_redis_url() -> Iterator[str]:
    """Fixture: the URL of a `throwaway_server` of this test alone (its settings may change)."""
    with throwaway_server() as url:
        yield url


def unique_prefix(kind: str = "test") -> str:
    """A key prefix no other test or run uses: ``taskq-{kind}-{random hex}``."""
    return f"taskq-{kind}-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Fixture: the tests' Redis server; skip without one, fail under ``CI=true``."""
    return redis_url_or_skip()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """Fixture: a key prefix of this test alone; its keys are deleted after the test."""
    with temporary_prefix(redis_url) as prefix:
        yield prefix


@contextlib.contextmanager
def temporary_prefix(url: str, kind: str = "test") -> Iterator[str]:
    """A `unique_prefix` whose keys at ``url`` are deleted when the block ends."""
    prefix = unique_prefix(kind)
    try:
        yield prefix
    finally:
        delete_keys(url, prefix)


def run_prefix(env: str, url: str) -> str:
    """The key prefix of this conformance run, shared with its child processes.

    The first call in a process (with ``env`` unset) chooses a `unique_prefix`, exports it
    in the environment variable ``env`` for child processes to inherit, and has its keys at
    ``url`` deleted when the process exits. Set ``env`` yourself to choose the prefix (then
    nothing is deleted).
    """
    prefix = os.environ.get(env)
    if not prefix:
        prefix = os.environ[env] = unique_prefix("conformance")
        atexit.register(delete_keys, url, prefix)
    return prefix


def delete_keys(url: str, prefix: str) -> int:
    """Delete every key under ``prefix`` at ``url`` and return how many; 0 if unreachable.

    Keys are deleted in batches of ``DELETE_BATCH`` as ``SCAN`` finds them.
    """
    import redis

    deleted = 0
    with contextlib.suppress(redis.RedisError), redis.Redis.from_url(url) as client:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}:*", count=DELETE_BATCH):
            batch.append(key)
            if len(batch) >= DELETE_BATCH:
                deleted += int(client.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(client.delete(*batch))
    return deleted


async def take(broker: RedisStreamBroker, count: int, timeout: float = 30) -> list[AckableMessage]:
    """The next ``count`` messages of a new ``listen()`` of ``broker``, unsettled.

    The ``listen()`` is closed before this returns: what it read beyond ``count`` messages
    is handed back to the other consumers.

    Raises:
        TimeoutError: Fewer than ``count`` came within ``timeout`` seconds.
    """
    got: list[AckableMessage] = []

    async def collect() -> None:
        async with contextlib.aclosing(broker.listen()) as messages:
            async for item in messages:
                got.append(item)
                if len(got) == count:
                    return

    await asyncio.wait_for(collect(), timeout)
    return got


class Relay(TcpRelay):
    """A `TcpRelay` to a Redis server that can also drop replies.

    `cut_on_reply` cuts it in place of passing on Redis's reply to one command: Redis gets
    (and runs) the command, the client never gets the answer. While hung (`hang`), the
    connections stay open and Redis still gets the commands, but no reply is passed on: a
    server that stopped answering (stopped, swapped out, a lost network path) rather than one
    that refuses connections.
    """

    def __init__(self, host: str, port: int) -> None:
        """Relay to the Redis server at ``host:port`` once started."""
        super().__init__(host, port)
        self.is_hung = False
        self._reply_watch: tuple[bytes, tuple[bytes, ...]] | None = None

    def hang(self) -> None:
        """Pass on no reply (they are dropped) until `restore`; connections stay open."""
        self.is_hung = True

    def restore(self) -> None:
        """Relay new connections and replies again."""
        super().restore()
        self.is_hung = False

    def cut_on_reply(self, command: bytes, passing: tuple[bytes, ...] = ()) -> None:
        """`cut` when Redis replies to the next ``command`` (its name, as sent), dropping the reply.

        A reply starting with one of ``passing`` (an error such as ``b"-NOSCRIPT"``) is passed
        on instead, and the next ``command`` is watched.
        """
        self._reply_watch = (command.upper(), passing)

    def pumps(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
    ) -> tuple[Coroutine[Any, Any, None], Coroutine[Any, Any, None]]:
        """Commands up and replies down, watching for `cut_on_reply` and `hang`."""
        awaiting_reply = asyncio.Event()
        return (
            self._upstream(client_r, server_w, awaiting_reply),
            self._downstream(server_r, client_w, awaiting_reply),
        )

    async def _upstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, awaiting: asyncio.Event
    ) -> None:
        while data := await reader.read(RELAY_CHUNK):
            watch = self._reply_watch
            if watch is not None and watch[0] in data.upper():
                awaiting.set()
            await self.send(writer, data)

    async def _downstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, awaiting: asyncio.Event
    ) -> None:
        while data := await reader.read(RELAY_CHUNK):
            if self.is_hung:
                continue
            watch = self._reply_watch
            if watch is not None and awaiting.is_set():
                awaiting.clear()
                if not data.startswith(watch[1]):
                    self._reply_watch = None
                    self.cut()
                    return
            await self.send(writer, data)


def relayed(url: str) -> contextlib.AbstractAsyncContextManager[Relay]:
    """A started `Relay` to the Redis server at ``url``; connect to its ``url`` instead.

    The relay is closed (its connections too) when the block ends.
    """
    return relay_in_front(Relay, url, 6379)
