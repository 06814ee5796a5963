"""Fixtures: the RabbitMQ server of the tests (skip without one, fail on CI), fresh brokers and
its administration (closing connections, policies) by ``rabbitmqctl`` or the management API."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from taskq import BrokerMessage
from taskq_amqp import AmqpBroker
from taskq_amqp.testing import amqp_url, delete_queues_async, unique_queue_name

# the RabbitMQ server of the tests (skip without one, fail on CI)
__all__ = ["amqp_url"]


def message(data: bytes, **labels: Any) -> BrokerMessage:
    """A message of a new task id carrying ``data``."""
    return BrokerMessage(uuid.uuid4().hex, "amqp:test", data, labels)


async def ready(broker: AmqpBroker) -> int:
    """The messages ready in the broker's work queue."""
    channel = await broker.publisher.channel()
    return int((await channel.queue_declare(broker.queue_name, passive=True)).message_count)


@pytest.fixture
def queue_name(amqp_url: str) -> Any:
    """A queue name of this test alone."""
    return unique_queue_name()


@pytest.fixture
async def new_broker(amqp_url: str, queue_name: str) -> AsyncIterator[Callable[..., Any]]:
    """Make started brokers on the test's queue (workers by default); delete its queues after."""
    made: list[AmqpBroker] = []

    async def new(worker: bool = True, **options: Any) -> AmqpBroker:
        broker = AmqpBroker(amqp_url, queue_name, **options)
        broker.is_worker_process = worker
        await broker.startup()
        made.append(broker)
        return broker

    yield new
    names = {name for broker in made for name in broker.queue_names()}
    for broker in made:
        await broker.shutdown()
    await delete_queues_async(amqp_url, sorted(names))


#: The management API, used where ``rabbitmqctl`` is not installed (CI's RabbitMQ container).
MANAGEMENT_URL = os.environ.get("TASKQ_AMQP_MANAGEMENT_URL", "http://127.0.0.1:15672")
#: The reason RabbitMQ logs for connections the tests close.
CLOSE_REASON = "taskq test: connections closed mid-run"


def named_connections(url: str, name: str) -> str:
    """``url`` with the AMQP connection name ``name``, which the administration sees."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.urlencode([*urllib.parse.parse_qsl(parts.query), ("name", name)])
    return urllib.parse.urlunsplit(parts._replace(query=query))


class Rabbitmqctl:
    """Administers the local RabbitMQ node with its command-line tool."""

    def close_connections(self, named: str) -> int:
        """Have RabbitMQ close the client connections a client called ``named``; return how many.

        Only those: the server is shared with other test runs.
        """
        # one line per connection: its process id (what close_connection takes, in this text
        # form only) and its client properties as an Erlang term
        listed = self._run(
            "list_connections", "-q", "--no-table-headers", "pid", "client_properties"
        )
        given = '{"connection_name",' + json.dumps(named) + "}"
        closing = [
            line.partition("\t")[0]
            for line in listed.splitlines()
            if given in line.partition("\t")[2]
        ]
        for pid in closing:
            self._run("close_connection", pid, CLOSE_REASON)
        return len(closing)

    def set_policy(self, name: str, pattern: str, definition: dict[str, Any]) -> None:
        """Apply ``definition`` to the queues whose name matches ``pattern``."""
        self._run(
            "set_policy",
            "--apply-to",
            "queues",
            "--priority",
            "100",
            name,
            pattern,
            json.dumps(definition),
        )

    def clear_policy(self, name: str) -> None:
        """Remove the policy ``name``."""
        self._run("clear_policy", name)

    def queue_arguments(self, name: str) -> dict[str, Any]:
        """The arguments the queue ``name`` was declared with."""
        listed = json.loads(
            self._run("list_queues", "--quiet", "name", "arguments", "--formatter", "json")
        )
        (queue,) = [queue for queue in listed if queue["name"] == name]
        return {key: value for key, _type, value in queue["arguments"]}

    def _run(self, *args: str) -> str:
        done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout


class ManagementApi:
    """Administers RabbitMQ through its HTTP management API (guest/guest, vhost ``/``)."""

    def __init__(self, url: str = MANAGEMENT_URL) -> None:
        self.url = url

    def answers(self) -> bool:
        """Whether the API is there."""
        try:
            self._call("GET", "/api/overview")
        except OSError:
            return False
        return True

    def close_connections(self, named: str) -> int:
        """Have RabbitMQ close the client connections a client called ``named``; return how many.

        Only those: the server is shared with other test runs.
        """
        closing = [
            connection["name"]
            for connection in self._call("GET", "/api/connections")
            if (connection.get("client_properties") or {}).get("connection_name") == named
        ]
        for name in closing:
            self._call("DELETE", "/api/connections/" + urllib.parse.quote(name, safe=""))
        return len(closing)

    def set_policy(self, name: str, pattern: str, definition: dict[str, Any]) -> None:
        """Apply ``definition`` to the queues whose name matches ``pattern``."""
        policy = {"pattern": pattern, "definition": definition, "apply-to": "queues"}
        self._call("PUT", self._policy(name), {**policy, "priority": 100})

    def clear_policy(self, name: str) -> None:
        """Remove the policy ``name``."""
        self._call("DELETE", self._policy(name))

    def queue_arguments(self, name: str) -> dict[str, Any]:
        """The arguments the queue ``name`` was declared with."""
        queue = self._call("GET", "/api/queues/%2F/" + urllib.parse.quote(name, safe=""))
        return dict(queue["arguments"])

    @staticmethod
    def _policy(name: str) -> str:
        return "/api/policies/%2F/" + urllib.parse.quote(name, safe="")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        auth = "Basic " + base64.b64encode(b"guest:guest").decode()
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": auth,
                "X-Reason": CLOSE_REASON,
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = response.read()
        return json.loads(answer) if answer else None


@pytest.fixture
def rabbit_admin() -> Rabbitmqctl | ManagementApi:
    """``rabbitmqctl`` where installed, else the management API; skip when neither is there."""
    if shutil.which("rabbitmqctl") is not None:
        return Rabbitmqctl()
    api = ManagementApi()
    if not api.answers():
        pytest.skip(f"neither rabbitmqctl nor the management API ({MANAGEMENT_URL})")
    return api


@pytest.fixture
def management_api() -> ManagementApi:
    """The management API; skip when it is not there (it is on CI)."""
    api = ManagementApi()
    if not api.answers():
        pytest.skip(f"no RabbitMQ management API at {MANAGEMENT_URL}")
    return api
