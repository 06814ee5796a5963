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
from collections.abc import Iterable

import pytest

from taskq.testing import TcpRelay, relay_in_front
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
