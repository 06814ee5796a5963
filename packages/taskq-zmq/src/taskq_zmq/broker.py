"""`ZeroMQBroker`: load-balanced delivery over ZeroMQ, with credit-based flow and no server."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, ClassVar, Literal

import zmq

from taskq.abc.broker import AsyncBroker
from taskq.abc.result_backend import AsyncResultBackend
from taskq.capabilities import Capability
from taskq.exceptions import SendTaskError
from taskq.message import BrokerMessage
from taskq_zmq.dispatcher import Dispatcher
from taskq_zmq.intake import Intake

#: Messages a worker buffers beyond those it is running (its credit with the client).
DEFAULT_PREFETCH = 256


class ZeroMQBroker(AsyncBroker):
    """Sends tasks from a client to worker processes over ZeroMQ, each task to one worker.

    The client binds ``zmq_pub_host`` and workers connect to ``zmq_sub_host`` (with
    ``bind="worker"``, the worker binds ``zmq_sub_host`` and clients connect to
    ``zmq_pub_host``: one worker host, many clients). Workers report how many messages they
    have room for; a message goes to the worker with the most room, and when no worker has
    any, ``kiq`` waits instead of dropping it. A worker buffers at most ``prefetch`` messages
    beyond those it runs, and when it stops gracefully it hands them back to the client, which
    sends them to another worker.

    ZeroMQ keeps nothing: messages a killed worker held are lost (no redelivery), and messages
    the client holds die with it. Use a durable broker where that matters.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LOAD_BALANCING, Capability.CROSS_PROCESS}
    )

    def __init__(
        self,
        zmq_pub_host: str = "tcp://0.0.0.0:5555",
        zmq_sub_host: str = "tcp://localhost:5555",
        result_backend: AsyncResultBackend[Any] | None = None,
        task_id_generator: Callable[[], str] | None = None,
        prefetch: int = DEFAULT_PREFETCH,
        bind: Literal["client", "worker"] = "client",
    ) -> None:
        """Configure the addresses (see the class docstring); nothing is opened before use."""
        super().__init__(result_backend, task_id_generator)
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        if bind not in ("client", "worker"):
            raise ValueError("bind must be 'client' or 'worker'")
        self.zmq_pub_host = zmq_pub_host
        self.zmq_sub_host = zmq_sub_host
        self.prefetch = prefetch
        self.bind = bind
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._dispatcher: Dispatcher | None = None
        self._intake: Intake | None = None

    async def startup(self) -> None:
        """Open the worker side in a worker process, the client side elsewhere."""
        await super().startup()
        if self.is_worker_process:
            self._worker_side()
        else:
            self._client_side()

    @property
    def connected_workers(self) -> int:
        """How many workers this client hears from now (0 before startup or on a worker)."""
        return 0 if self._dispatcher is None else self._dispatcher.live_workers()

    async def shutdown(self) -> None:
        """Hand back unstarted messages (worker side), fail waiting kicks (client side), close."""
        intake, self._intake = self._intake, None
        if intake is not None:
            await intake.close()
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            await dispatcher.close()
        if self._context is not None:
            self._context.term()
            self._context = None
        await super().shutdown()

    async def kick(self, message: BrokerMessage) -> None:
        """Send the message to one worker, waiting while no worker has room.

        In a worker process that has received tasks from a client (a task sending a task, a
        retry), the message goes to that client, which dispatches it like its own. Elsewhere
        this broker is the client itself.
        """
        if self.is_worker_process and self._dispatcher is None:
            if self._intake is None:
                raise SendTaskError("the ZeroMQ worker is not started, or shut down")
            if self._intake.heard_from_client:
                self._intake.forward(message.message)
                return
        await self._client_side().send(message.message)

    async def listen(self) -> AsyncGenerator[bytes, None]:
        """Yield the messages this worker receives until shutdown."""
        intake = self._worker_side()
        while (payload := await intake.take()) is not None:
            yield payload

    def _client_side(self) -> Dispatcher:
        if self._dispatcher is None:
            self._dispatcher = Dispatcher(self._zmq(), self.zmq_pub_host, self.bind == "client")
        return self._dispatcher

    def _worker_side(self) -> Intake:
        if self._intake is None:
            self._intake = Intake(
                self._zmq(), self.zmq_sub_host, bind=self.bind == "worker", prefetch=self.prefetch
            )
        return self._intake

    def _zmq(self) -> zmq.Context[zmq.Socket[bytes]]:
        if self._context is None:
            self._context = zmq.Context()
        return self._context
