"""Helpers for tests and conformance runs against a real RabbitMQ server (they need pytest).

`amqp_url_or_skip` gives the server of the tests (``TASKQ_AMQP_URL``, default
``amqp://guest:guest@127.0.0.1:5672/``): without one a test is skipped, except under
``CI=true`` where it fails, so that CI never passes by testing nothing. `unique_queue_name`
names the queues of one test or run; `delete_queues` removes them. `relayed` puts a `Relay`
between a client and the server, for a test to cut (an outage) or pause (a silent network)
without touching the shared server. `throwaway_node` starts a RabbitMQ node of a test's own,
for what would disturb every user of a shared one (a memory alarm).

A ``conftest.py`` imports the ``amqp_url`` fixture (session scope) to use it::

    from taskq_amqp.testing import amqp_url
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest

from taskq.testing import TcpRelay, free_port, relay_in_front
from taskq_amqp.connection import DEFAULT_URL

#: The environment variable naming the RabbitMQ server of tests and conformance runs.
URL_ENV = "TASKQ_AMQP_URL"
#: Seconds `amqp_url_or_skip` waits for the server to answer.
CONNECT_TIMEOUT_S = 5.0


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


#: Where system packages put RabbitMQ's commands, searched after PATH (often without them).
SBIN_DIRS = os.pathsep.join(["/usr/sbin", "/usr/local/sbin"])
#: Seconds a `throwaway_node` may take to start accepting connections.
NODE_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Node:
    """A RabbitMQ node of a test's own: its AMQP URL and its Erlang node name."""

    url: str
    name: str

    def ctl(self, *args: str) -> str:
        """Run ``rabbitmqctl -n <node> <args>``; return what it printed.

        Raises:
            subprocess.CalledProcessError: rabbitmqctl failed.
        """
        command = [_tool("rabbitmqctl"), "-n", self.name, *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout


@contextlib.contextmanager
def throwaway_node() -> Iterator[Node]:
    """Start a RabbitMQ node on free ports, with nothing kept; yield it; stop it.

    Takes several seconds. Skips the test without ``rabbitmq-server`` (fails under
    ``CI=true``).
    """
    server = _tool("rabbitmq-server")
    port, dist_port = free_port(), free_port()
    name = f"taskq-{port}@localhost"
    with tempfile.TemporaryDirectory(prefix="taskq-rabbitmq-") as directory:
        os.chmod(directory, 0o777)  # the node may run as the rabbitmq user
        config = os.path.join(directory, "rabbitmq.conf")
        with open(config, "w") as file:
            file.write(f"listeners.tcp.default = 127.0.0.1:{port}\n")
        env = dict(
            os.environ,
            RABBITMQ_NODENAME=name,
            RABBITMQ_DIST_PORT=str(dist_port),
            RABBITMQ_CONFIG_FILE=config,
            RABBITMQ_MNESIA_BASE=os.path.join(directory, "data"),
            RABBITMQ_LOG_BASE=os.path.join(directory, "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(directory, "plugins"),
        )
        process = subprocess.Popen(
            [server],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        node = Node(f"amqp://guest:guest@127.0.0.1:{port}/", name)
        beam = None  # the node's own process: the script may start it as another user
        try:
            _wait_for_node(node, process)
            beam = int(node.ctl("eval", "os:getpid().").strip().strip('"'))
            yield node
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if beam is not None:
                    os.kill(beam, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for_node(node: Node, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    while True:
        try:
            asyncio.run(_ping(node.url))
            return
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _tool(name: str) -> str:
    """The path of RabbitMQ's ``name``; skip the test without it (fail under ``CI=true``)."""
    path = shutil.which(name) or shutil.which(name, path=SBIN_DIRS)
    if path is None:
        reason = f"no {name} on PATH to run a RabbitMQ node of the test's own"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires it: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


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


class Relay(TcpRelay):
    """A `TcpRelay` to a RabbitMQ server (see `relayed`)."""


def relayed(url: str) -> contextlib.AbstractAsyncContextManager[Relay]:
    """A started `Relay` to the RabbitMQ server at ``url``; connect to its ``url`` instead.

    The relay is closed (its connections too) when the block ends.
    """
    return relay_in_front(Relay, url, 5672)
