"""`ZeroMQBroker`: load-balanced delivery over ZeroMQ, with credit-based flow and no server."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, ClassVar, Literal

from taskq.abc.broker import AsyncBroker
from taskq.abc.result_backend import AsyncResultBackend
from taskq.capabilities import Capability
from taskq.exceptions import BatchSendError, SendTaskError
from taskq.inspection import QueueInspection
from taskq.message import BrokerMessage
from taskq.toolkit import check_count
from taskq_zmq import protocol
from taskq_zmq.dispatcher import Dispatcher
from taskq_zmq.intake import Intake
from taskq_zmq.lifetime import OwnContext
from taskq_zmq.security import CurveKeys

#: Messages a worker buffers beyond those it is running (its credit with the client).
DEFAULT_PREFETCH = 256
#: Where the client binds by default: loopback only (see the Security section of the docs).
DEFAULT_PUB_HOST = "tcp://127.0.0.1:5555"
#: Where workers connect by default.
DEFAULT_SUB_HOST = "tcp://localhost:5555"


class ZeroMQBroker(AsyncBroker):
    """Sends tasks from a client to worker processes over ZeroMQ, each task to one worker.

    The client binds ``zmq_pub_host`` and workers connect to ``zmq_sub_host`` (with
    ``bind="worker"``, the worker binds ``zmq_sub_host`` and clients connect to
    ``zmq_pub_host``, which may list several workers' addresses separated by commas: one
    worker host, many clients). Workers report how many messages they have room for; a message
    goes to the worker with the most room, and when no worker has any, ``kiq`` waits instead of
    dropping it. A worker buffers at most ``prefetch`` messages beyond those it runs, and when
    it stops gracefully it hands them back to the client, which sends them to another worker.

    Whoever reaches the bound address can take and inject tasks: the default binds loopback
    only, binding another address without CURVE is refused (`SecurityError`) unless
    ``allow_unauthenticated`` is true, and CURVE (keys from the
    arguments or the ``TASKQ_ZMQ_CURVE_*`` environment variables, see `taskq_zmq.security`)
    lets in only peers whose public keys are allowed.

    ZeroMQ keeps nothing: messages a killed worker held are lost (no redelivery; the client
    logs how many), and messages the client holds die with it. Use a durable broker where that
    matters.

    Args:
        zmq_pub_host: the client's address (bound by the client); default loopback port 5555.
        zmq_sub_host: where workers find the client (workers connect).
        result_backend: where workers store results; default none (results are discarded).
        task_id_generator: how task ids are made; default random UUID4 hex.
        prefetch: messages a worker buffers beyond those it runs (its credit), 1 to
            `protocol.MAX_CREDIT` (65,535); default 256.
        bind: ``"client"`` (default) or ``"worker"``: which side binds.
        curve_secret_key_file: this process's ``.key_secret`` certificate: turns CURVE on.
            Default: ``TASKQ_ZMQ_CURVE_SECRET_KEY_FILE``, else CURVE is off.
        curve_server_key_file: the binding side's public ``.key`` certificate (needed by the
            side that connects). Default: ``TASKQ_ZMQ_CURVE_SERVER_KEY_FILE``.
        curve_allowed_keys_dir: a directory of the ``.key`` certificates the binding side lets
            in (needed by the side that binds). Default: ``TASKQ_ZMQ_CURVE_ALLOWED_KEYS_DIR``.
        allow_unauthenticated: let the binding side bind a non-loopback address without
            CURVE (logging a warning); default false: refused with `SecurityError`.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.LOAD_BALANCING,
            Capability.CROSS_PROCESS,
            Capability.INSPECT,
            Capability.BATCH_SEND,
        }
    )

    def __init__(
        self,
        zmq_pub_host: str = DEFAULT_PUB_HOST,
        zmq_sub_host: str = DEFAULT_SUB_HOST,
        result_backend: AsyncResultBackend[Any] | None = None,
        task_id_generator: Callable[[], str] | None = None,
        prefetch: int = DEFAULT_PREFETCH,
        bind: Literal["client", "worker"] = "client",
        *,
        curve_secret_key_file: str | os.PathLike[str] | None = None,
        curve_server_key_file: str | os.PathLike[str] | None = None,
        curve_allowed_keys_dir: str | os.PathLike[str] | None = None,
        allow_unauthenticated: bool = False,
    ) -> None:
        """Configure the addresses and keys (see the class docstring); nothing opens before use.

        Raises:
            ValueError: ``prefetch`` or ``bind`` is out of range.
            SecurityError: a CURVE key file cannot be read (see `CurveKeys.load`).
        """
        super().__init__(result_backend, task_id_generator)
        check_count("prefetch", prefetch, maximum=protocol.MAX_CREDIT)
        if bind not in ("client", "worker"):
            raise ValueError("bind must be 'client' or 'worker'")
        self.zmq_pub_host = zmq_pub_host
        self.zmq_sub_host = zmq_sub_host
        self.prefetch = prefetch
        self.bind = bind
        self.curve = CurveKeys.load(
            curve_secret_key_file, curve_server_key_file, curve_allowed_keys_dir
        )
        self.allow_unauthenticated = allow_unauthenticated
        self._context: OwnContext | None = None
        self._dispatcher: Dispatcher | None = None
        self._intake: Intake | None = None
        self._closing = False  # during shutdown: a kick must not open a new client side

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

    async def inspect(self) -> QueueInspection:
        """The client's view of the queue: ZeroMQ keeps no queue anywhere else.

        ``ready``: messages waiting until a worker has room; ``in_flight``: messages sent to
        live workers that they had not started by their last report, per worker in
        ``consumers``. Nothing is delayed or dead. Before the client side opens (or in a
        worker that never sent a task) every count is 0.
        """
        if self._dispatcher is None:
            return QueueInspection(queue=self.zmq_pub_host)
        return self._dispatcher.inspect()

    async def shutdown(self) -> None:
        """Hand back unstarted messages (worker side), fail waiting kicks (client side), close.

        A kick made while it runs fails with `SendTaskError`. A broker dropped without it
        loses what it holds: once nothing uses its sockets any more, the garbage collector
        closes them without linger (see `OwnContext`).
        """
        self._closing = True
        try:
            await self._close()
        finally:
            self._closing = False
        await super().shutdown()

    async def _close(self) -> None:
        intake, self._intake = self._intake, None
        if intake is not None:
            await intake.close()
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            await dispatcher.close()
        context, self._context = self._context, None
        if context is not None:
            context.close()

    async def kick(self, message: BrokerMessage) -> None:
        """Send the message to one worker, waiting while no worker has room.

        It returns once a worker with room is given the message, which leaves right after the
        event loop's current turn, with whatever else that worker was given in it (at shutdown
        at the latest). In a worker process that has received tasks from a client (a task
        sending a task, a retry), the message goes to that client, which dispatches it like its
        own. Elsewhere this broker is the client itself.
        """
        if self._dispatcher is None and (intake := self._forwarding_intake()) is not None:
            intake.forward([message.message])
            return
        pending = (self._dispatcher or self._client_side()).offer([message.message])
        if pending is not None:
            await pending.wait()

    async def kick_many(self, messages: Sequence[BrokerMessage]) -> None:
        """Send a batch as `kick` sends each, with one ZeroMQ message per worker it goes to.

        The batch is split between the workers as one-by-one kicks would split it, and what
        finds no room waits (in order) for it. In a worker process that has received tasks
        from a client, the whole batch goes to that client as one message.

        Raises:
            BatchSendError: the broker shut down (or the worker's client could not be reached)
                before every message was given to a worker; ``sent_ids`` are those that were
                (the first ones of the batch), ``unsent_ids`` those no worker received.
        """
        payloads = [message.message for message in messages]
        if not payloads:
            return
        pending = None
        try:
            if self._dispatcher is None and (intake := self._forwarding_intake()) is not None:
                intake.forward(payloads)
                return
            pending = self._client_side().offer(payloads)
            if pending is not None:
                await pending.wait()
        except SendTaskError as exc:
            sent = 0 if pending is None else pending.sent
            raise BatchSendError.of(
                [message.task_id for message in messages[:sent]],
                [message.task_id for message in messages[sent:]],
                str(exc),
            ) from exc

    def _forwarding_intake(self) -> Intake | None:
        """In a worker process that heard from a client, the intake that sends through it."""
        if not self.is_worker_process:
            return None
        if self._intake is None:
            raise SendTaskError("the ZeroMQ worker is not started, or shut down")
        return self._intake if self._intake.heard_from_client else None

    async def listen(self) -> AsyncGenerator[bytes, None]:
        """Yield the messages this worker receives until shutdown."""
        intake = self._worker_side()
        while (payload := await intake.take()) is not None:
            yield payload

    def _client_side(self) -> Dispatcher:
        if self._dispatcher is None:
            if self._closing:
                raise SendTaskError("the ZeroMQ broker is shut down")
            binds = self.bind == "client"
            self._dispatcher = Dispatcher(
                self._zmq(binds),
                self.zmq_pub_host,
                binds,
                curve=self.curve,
                allow_unauthenticated=self.allow_unauthenticated,
            )
        return self._dispatcher

    def _worker_side(self) -> Intake:
        if self._intake is None:
            binds = self.bind == "worker"
            self._intake = Intake(
                self._zmq(binds),
                self.zmq_sub_host,
                binds,
                self.prefetch,
                curve=self.curve,
                allow_unauthenticated=self.allow_unauthenticated,
            )
        return self._intake

    def _zmq(self, binds: bool) -> OwnContext:
        """The context, with the authenticator running if a CURVE socket is about to bind."""
        if self._context is None:
            self._context = OwnContext()
        if binds and self.curve is not None:
            self._context.guard(self.curve)
        return self._context
