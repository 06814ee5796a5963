"""`AsyncBroker`: the base class of every broker, with what brokers share (tasks, builders, events).

Its contract (what a subclass implements: `kick`, `listen`, ``capabilities``) is documented
in `taskq.abc.broker`; the class lives here because it wires concrete defaults (JSON
serializer, proxy formatter, a result backend that keeps nothing).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from typing_extensions import ParamSpec, Self

from taskq._awaitable import maybe_await
from taskq.abc.middleware import TaskiqMiddleware, hooks_by_name
from taskq.capabilities import Capability
from taskq.checks import check_count
from taskq.control.limits import TaskLimits
from taskq.decor import AsyncTaskiqDecoratedTask
from taskq.event_recorder import DEFAULT_MAX_MESSAGE_BYTES, EventRecorder
from taskq.events import EventHandler, TaskiqEvents
from taskq.exceptions import (
    BatchSendError,
    CancellationUnavailableError,
    InspectUnsupportedError,
)
from taskq.formatters import ProxyFormatter
from taskq.result_backends import DummyResultBackend
from taskq.serializers.json import JSONSerializer
from taskq.shared_registry import shared_task_registry
from taskq.state import TaskiqState
from taskq.task_ids import default_id_generator
from taskq.task_names import default_task_name

if TYPE_CHECKING:
    from taskq.abc.cancellation import CancellationStore
    from taskq.abc.event_store import AsyncEventStore
    from taskq.abc.formatter import TaskiqFormatter
    from taskq.abc.limiter import TaskLimiter
    from taskq.abc.result_backend import AsyncResultBackend
    from taskq.abc.serializer import TaskiqSerializer
    from taskq.abc.unique_store import UniqueKeyStore
    from taskq.acks import AckableMessage
    from taskq.inspection import QueueInspection
    from taskq.message import BrokerMessage, TaskiqMessage

logger = logging.getLogger("taskq.broker")

_Params = ParamSpec("_Params")
_ReturnType = TypeVar("_ReturnType")


class AsyncBroker(ABC):
    """Base class of every broker.

    Subclasses implement `kick` (send bytes) and `listen` (yield received bytes or
    `AckableMessage`s), and declare what else they can do in ``capabilities``.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: Messages the worker consuming this broker holds at once (running plus prefetched), set
    #: by the receiver before it listens; None outside a worker. A broker may size its
    #: prefetch by it.
    worker_capacity: int | None = None

    def __init__(
        self,
        result_backend: AsyncResultBackend[Any] | None = None,
        task_id_generator: Callable[[], str] | None = None,
    ) -> None:
        """Set up an empty broker with ``result_backend`` (default: keeps no results)."""
        self.middlewares: list[TaskiqMiddleware] = []
        self.middleware_hooks: dict[str, list[Any]] = hooks_by_name([])
        self.result_backend: AsyncResultBackend[Any] = result_backend or DummyResultBackend()
        self._cancellation: CancellationStore | None = None
        self.cancellation = None  # declares no Capability.CANCEL until a store is given
        self.decorator_class = AsyncTaskiqDecoratedTask
        self.serializer: TaskiqSerializer = JSONSerializer()
        self.formatter: TaskiqFormatter = ProxyFormatter(self)
        self.id_generator: Callable[[], str] = task_id_generator or default_id_generator
        self.local_task_registry: dict[str, AsyncTaskiqDecoratedTask[Any, Any]] = {}
        self.dependency_overrides: dict[Any, Any] = {}
        self.custom_dependency_context: dict[Any, Any] = {}
        self.state = TaskiqState()
        #: Enforces the tasks' rate and concurrency limits (None: see `with_limiter`).
        self.limiter: TaskLimiter | None = None
        #: Holds the keys of unique tasks (None: see `with_unique_store`).
        self.unique_store: UniqueKeyStore | None = None
        self.event_handlers: defaultdict[TaskiqEvents, list[EventHandler]] = defaultdict(list)
        self.is_worker_process = False
        self.is_scheduler_process = False
        #: Where task events and heartbeats go (None: not recorded); see `with_event_store`.
        self.event_store: AsyncEventStore | None = None
        #: What records them while the broker runs (None when there is no event store).
        self.event_recorder: EventRecorder | None = None
        #: Largest encoded message a ``sent`` event keeps; see `with_event_store`.
        self.event_message_bytes = DEFAULT_MAX_MESSAGE_BYTES
        self._started = False

    # -- the two methods every broker implements ------------------------------------------

    @abstractmethod
    async def kick(self, message: BrokerMessage) -> None:
        """Send ``message.message`` (bytes, delivered byte for byte) to the queue."""

    async def kick_many(self, messages: Sequence[BrokerMessage]) -> None:
        """Send a batch of messages, each as `kick` sends one.

        This default kicks them one by one; a broker that declares ``Capability.BATCH_SEND``
        overrides it to send the batch in one round trip.

        Raises:
            BatchSendError: A message could not be sent; the error names the task ids of those
                that were (``sent_ids``) and of the rest (``unsent_ids``).
        """
        for n, message in enumerate(messages):
            try:
                await self.kick(message)
            except Exception as exc:
                raise BatchSendError.of(
                    [m.task_id for m in messages[:n]],
                    [m.task_id for m in messages[n:]],
                    f"{type(exc).__name__}: {exc}",
                ) from exc

    @abstractmethod
    def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        """Yield received messages until the broker shuts down."""

    def takes_decoded(self) -> bool:
        """Whether `kick_decoded` takes messages now; this default never does.

        A broker whose messages never leave this process (the in-memory one, running its own
        messages) may say yes: ``kiq`` then hands it the message as the worker would decode
        it, whenever the formatter can tell that without encoding
        (`TaskiqFormatter.decoded_copy`), and the encoding and decoding are spared. A message
        whose encoding could fail or change it is encoded and sent with `kick` as always.
        """
        return False

    async def kick_decoded(self, message: TaskiqMessage) -> None:
        """Send ``message``, a decoded copy no one else holds, to this broker's own receiver.

        Only called while `takes_decoded` says yes.
        """
        raise NotImplementedError(f"{type(self).__name__} takes no decoded messages")

    async def inspect(self) -> QueueInspection:
        """Count the queue's messages by state and list its consumers.

        Only brokers that declare ``Capability.INSPECT`` implement it.

        Raises:
            InspectUnsupportedError: The broker does not declare ``inspect``.
        """
        raise InspectUnsupportedError(broker=type(self).__name__)

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def is_started(self) -> bool:
        """Whether `startup` ran and `shutdown` has not run since."""
        return self._started

    async def startup(self) -> None:
        """Start the result backend and middlewares, then fire the startup event handlers.

        Workers fire ``WORKER_STARTUP``, everything else ``CLIENT_STARTUP``.
        """
        self._started = True
        await self.result_backend.startup()
        if self.event_store is not None:
            await self.event_store.startup()
            self.event_recorder = EventRecorder(
                self.event_store, max_message_bytes=self.event_message_bytes
            )
            self.event_recorder.start()
        if self.cancellation is not None:
            await self.cancellation.startup()
        for store in (self.limiter, self.unique_store):
            if store is not None:
                await store.startup()
        for middleware in self.middlewares:
            await maybe_await(middleware.startup())
        event = (
            TaskiqEvents.WORKER_STARTUP if self.is_worker_process else TaskiqEvents.CLIENT_STARTUP
        )
        await self.run_event_handlers(event)

    async def shutdown(self) -> None:
        """Fire the shutdown event handlers, then stop middlewares and the result backend.

        Calling it twice, or without `startup`, does nothing the second time.
        """
        if not self._started:
            return
        self._started = False
        event = (
            TaskiqEvents.WORKER_SHUTDOWN if self.is_worker_process else TaskiqEvents.CLIENT_SHUTDOWN
        )
        await self.run_event_handlers(event)
        for middleware in self.middlewares:
            await maybe_await(middleware.shutdown())
        for store in (self.limiter, self.unique_store):
            if store is not None:
                await store.shutdown()
        recorder, self.event_recorder = self.event_recorder, None
        if recorder is not None and self.event_store is not None:
            await recorder.close()
            await self.event_store.shutdown()
        if self.cancellation is not None:
            await self.cancellation.shutdown()
        await self.result_backend.shutdown()

    async def __aenter__(self) -> Self:
        """Start the broker (`startup`) for the ``async with`` block and return it."""
        await self.startup()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop the broker (`shutdown`) when the ``async with`` block ends, even on error."""
        await self.shutdown()

    async def run_event_handlers(self, event: TaskiqEvents) -> None:
        """Run the handlers of ``event`` in the order they were added."""
        for handler in self.event_handlers.get(event, ()):
            await maybe_await(handler(self.state))

    # -- tasks ------------------------------------------------------------------------------

    @overload
    def task(
        self, task_name: Callable[_Params, _ReturnType]
    ) -> AsyncTaskiqDecoratedTask[_Params, _ReturnType]: ...

    @overload
    def task(
        self, task_name: str | None = None, **labels: Any
    ) -> Callable[
        [Callable[_Params, _ReturnType]], AsyncTaskiqDecoratedTask[_Params, _ReturnType]
    ]: ...

    def task(self, task_name: Any = None, **labels: Any) -> Any:
        """Register a function as a task: ``@broker.task`` or ``@broker.task("name", **labels)``.

        The default name is ``"module:function"``; labels are sent with every message, except
        ``rate_limit``, ``max_concurrency`` and ``limit_key``, the task's limits (see
        `taskq.control.limits`; a bad value raises `InvalidTaskLimitError`).
        """
        if callable(task_name):
            return self.register_task(task_name)

        def register(func: Callable[_Params, _ReturnType]) -> Any:
            return self.register_task(func, task_name, **labels)

        return register

    def register_task(
        self,
        func: Callable[_Params, _ReturnType],
        task_name: str | None = None,
        **labels: Any,
    ) -> AsyncTaskiqDecoratedTask[_Params, _ReturnType]:
        """Register ``func`` as a task and return the decorated task."""
        name = task_name or default_task_name(func)
        limits = TaskLimits.take_from(labels, func)
        if name in self.local_task_registry:
            logger.warning("Task %r is registered again; the new function replaces it", name)
        decorated = self.decorator_class(self, name, func, labels)
        if limits is not None:
            decorated.limits = limits
        self.local_task_registry[name] = decorated
        return decorated

    def find_task(self, task_name: str) -> AsyncTaskiqDecoratedTask[Any, Any] | None:
        """Return the task registered under ``task_name`` (here or on the shared broker)."""
        return self.local_task_registry.get(task_name) or shared_task_registry.get(task_name)

    def get_all_tasks(self) -> dict[str, AsyncTaskiqDecoratedTask[Any, Any]]:
        """Return every task this broker can run, by name."""
        return {**shared_task_registry, **self.local_task_registry}

    async def cancel(self, task_id: str, reason: str = "") -> None:
        """Cancel task ``task_id``: if queued it never starts; if running it is stopped.

        A running async task is cancelled within about a second; a sync one sees
        ``Context.cancelled`` and stops itself. Its result is a failed one with
        `TaskCancelledError`. Cancelling a finished or unknown task does nothing but keep
        the record (for the store's TTL).

        Raises:
            CancellationUnavailableError: the broker has no cancellation store.
        """
        store = self.target_broker().cancellation
        if store is None:
            raise CancellationUnavailableError(broker=type(self.target_broker()).__name__)
        await store.cancel(task_id, reason)

    def target_broker(self) -> AsyncBroker:
        """Return the broker that sends this broker's tasks (itself, for real brokers)."""
        return self

    # -- builders ---------------------------------------------------------------------------

    def with_result_backend(self, result_backend: AsyncResultBackend[Any]) -> Self:
        """Store results in ``result_backend``; return the broker."""
        self.result_backend = result_backend
        return self

    def with_event_store(
        self,
        event_store: AsyncEventStore,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> Self:
        """Record task events and worker heartbeats in ``event_store``; return the broker.

        Off by default. Events are buffered and written in batches in the background (see
        `taskq.event_recorder`); `shutdown` writes what is left. A ``sent`` event keeps the
        encoded message (to show and send again its arguments) when it is at most
        ``max_message_bytes`` long (0: never).

        Raises:
            ValueError: ``max_message_bytes`` is not an integer of at least 0.
        """
        check_count("max_message_bytes", max_message_bytes, minimum=0)
        self.event_store = event_store
        self.event_message_bytes = max_message_bytes
        return self

    def with_cancellation(self, store: CancellationStore | None) -> Self:
        """Record and watch cancellations in ``store`` (None: no cancellation); return the broker.

        Workers then check each message against the store before running it and stop
        running tasks whose cancellation is recorded; see `cancel`. The broker declares
        ``Capability.CANCEL`` while it has a store (see `cancellation`).
        """
        self.cancellation = store
        return self

    @property
    def cancellation(self) -> CancellationStore | None:
        """Where cancellations are recorded and watched (None: the broker cannot cancel)."""
        return self._cancellation

    @cancellation.setter
    def cancellation(self, store: CancellationStore | None) -> None:
        # whether this instance can cancel depends on its store, not on its class
        self._cancellation = store
        capabilities = self.capabilities - {Capability.CANCEL}
        if store is not None:
            capabilities |= {Capability.CANCEL}
        self.capabilities = capabilities  # type: ignore[misc]

    def with_limiter(self, limiter: TaskLimiter) -> Self:
        """Enforce rate and concurrency limits through ``limiter``; return the broker.

        A broker whose workers share one process uses an in-process limiter by default; one
        that declares ``cross_process`` needs a shared one (``taskq_redis.RedisLimiter``).
        """
        self.limiter = limiter
        return self

    def with_unique_store(self, store: UniqueKeyStore) -> Self:
        """Hold the keys of unique tasks in ``store``; return the broker.

        A broker whose workers share one process uses an in-process store by default; one
        that declares ``cross_process`` needs a shared one (SQLite on one host, Redis).
        """
        self.unique_store = store
        return self

    def with_middlewares(self, *middlewares: TaskiqMiddleware) -> Self:
        """Add middlewares (they run in the order given); return the broker."""
        self.add_middlewares(*middlewares)
        return self

    def add_middlewares(self, *middlewares: TaskiqMiddleware) -> None:
        """Add middlewares (they run in the order given)."""
        for middleware in middlewares:
            if not isinstance(middleware, TaskiqMiddleware):
                raise TypeError(f"{middleware!r} is not a TaskiqMiddleware")
            middleware.set_broker(self)
            self.middlewares.append(middleware)
        self.middleware_hooks = hooks_by_name(self.middlewares)

    def with_serializer(self, serializer: TaskiqSerializer) -> Self:
        """Encode messages with ``serializer``; return the broker."""
        self.serializer = serializer
        return self

    def with_formatter(self, formatter: TaskiqFormatter) -> Self:
        """Format messages with ``formatter``; return the broker."""
        self.formatter = formatter
        return self

    def with_id_generator(self, task_id_generator: Callable[[], str]) -> Self:
        """Generate task ids with ``task_id_generator``; return the broker."""
        self.id_generator = task_id_generator
        return self

    def add_dependency_context(self, new_ctx: dict[Any, Any]) -> None:
        """Make these values injectable into tasks (``{SomeType: instance}``)."""
        self.custom_dependency_context.update(new_ctx)

    # -- events -----------------------------------------------------------------------------

    def on_event(self, *events: TaskiqEvents) -> Callable[[EventHandler], EventHandler]:
        """Decorate a handler (sync or async, taking the state) to run on these events."""

        def register(handler: EventHandler) -> EventHandler:
            for event in events:
                self.add_event_handler(event, handler)
            return handler

        return register

    def add_event_handler(self, event: TaskiqEvents, handler: EventHandler) -> None:
        """Run ``handler`` on ``event``."""
        self.event_handlers[TaskiqEvents(event)].append(handler)

    def with_event_handlers(self, event: TaskiqEvents, *handlers: EventHandler) -> Self:
        """Run these handlers on ``event``; return the broker."""
        for handler in handlers:
            self.add_event_handler(event, handler)
        return self
