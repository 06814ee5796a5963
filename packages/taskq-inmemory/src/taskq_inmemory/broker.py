"""`InMemoryBroker`: client and worker in one process, through the same receiver as production."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any, ClassVar

from taskq import InMemoryCancellationStore
from taskq.abc.broker import AsyncBroker
from taskq.capabilities import Capability
from taskq.events import TaskiqEvents
from taskq.exceptions import BatchSendError, UnknownTaskError
from taskq.inspection import ConsumerInfo, QueueInspection
from taskq.labels import delay_seconds, priority_value
from taskq.message import BrokerMessage, TaskiqMessage
from taskq.receiver import Receiver
from taskq.toolkit import check_count, running_loop
from taskq_inmemory.message_queue import MessageQueue, Queued
from taskq_inmemory.result_backend import InmemoryResultBackend

logger = logging.getLogger("taskq.inmemory")

#: Trips through the event loop `InMemoryBroker.startup` gives its consumer to start.
_CONSUMER_START_TRIPS = 4


class InMemoryBroker(AsyncBroker):
    """Runs tasks in this process, for development and tests.

    Messages go through a real queue (honouring the ``delay`` and ``priority`` labels) and
    the same `Receiver` a worker runs, so tests exercise what production runs: encoding,
    middlewares, argument casting, results. Results are kept by an `InmemoryResultBackend`,
    cancellations (``broker.cancel``) by an `InMemoryCancellationStore`.

    While it runs its own messages, a ``kiq`` whose arguments and labels are plain data that
    the default JSON serializer keeps as they are (ASCII text, 64-bit ints, floats, bools,
    None, lists and dicts of them) is queued decoded: its task sees exactly what decoding
    its bytes would give, and the encoding and decoding are spared. Any other message, and
    every message of a custom serializer or formatter or of a subclass overriding `kick` or
    `listen`, is encoded and decoded as a worker's.

    Args:
        sync_tasks_pool_size: threads that run sync tasks.
        max_stored_results: results kept before the oldest is forgotten (-1: all).
        cast_types: cast arguments to the task's annotations.
        max_async_tasks: tasks running at once.
        propagate_exceptions: let dependencies (generator ``TaskiqDepends``) see the task's error.
        await_inplace: ``kiq`` returns only once the task ran (no queue; no delay).

    Raises:
        ValueError: ``sync_tasks_pool_size`` or ``max_async_tasks`` is not an integer of at
            least 1, or ``max_stored_results`` neither that nor -1.

    When ``is_worker_process`` is set before `startup`, the broker does not run its own
    messages: whoever consumes `listen` does (a worker, or a conformance test).
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.DELAY,
            Capability.PRIORITY,
            Capability.LOAD_BALANCING,
            Capability.INSPECT,
            Capability.BATCH_SEND,
        }
    )

    def __init__(
        self,
        sync_tasks_pool_size: int = 4,
        max_stored_results: int = 100,
        cast_types: bool = True,
        max_async_tasks: int = 30,
        propagate_exceptions: bool = True,
        await_inplace: bool = False,
    ) -> None:
        """Create the broker (see the class docstring for the arguments)."""
        check_count("sync_tasks_pool_size", sync_tasks_pool_size)
        check_count("max_async_tasks", max_async_tasks)
        super().__init__(result_backend=InmemoryResultBackend(max_stored_results))
        self.receiver = Receiver(
            self,
            max_threadpool_threads=sync_tasks_pool_size,
            validate_params=cast_types,
            max_async_tasks=max_async_tasks,
            propagate_exceptions=propagate_exceptions,
        )
        self.cancellation = InMemoryCancellationStore()  # so it declares Capability.CANCEL
        self.await_inplace = await_inplace
        self.queue = MessageQueue()
        self._consumer: asyncio.Task[None] | None = None
        self._listeners: set[str] = set()
        self._listener_numbers = itertools.count(1)

    async def kick(self, message: BrokerMessage) -> None:
        """Queue the message (or, with ``await_inplace``, run it before returning)."""
        priority, delay = _placement(message.labels)
        if self._runs_in_place(message.task_name, delay):
            await self.receiver.callback(message.message)
        else:
            self.queue.put(message.message, priority, delay)

    def takes_decoded(self) -> bool:
        """Yes while it runs its own messages (outside a worker process): they stay here.

        No in a subclass that overrides `kick` or `listen`, nor once either is replaced on
        the instance (a test's stand-in, say): messages then go through them.
        """
        return self._own_transport() and not self.is_worker_process

    def _own_transport(self) -> bool:
        """Whether `kick` and `listen` are this module's, not a subclass's or a stand-in's.

        Checked at each call: a test may replace them on the instance or on the class (as
        ``unittest.mock.patch.object`` does) at any time, and must then see every message.
        Told from the bound methods, not from the instance's ``__dict__``: on Python 3.11 and
        3.12, reading that makes the instance keep its attributes in a dict, and every later
        attribute read of the broker costs more.
        """
        kick: Any = self.kick  # whatever they are now, bound methods or stand-ins
        listen: Any = self.listen
        try:
            return (
                kick.__func__ is _OWN_KICK
                and kick.__self__ is self
                and listen.__func__ is _OWN_LISTEN
                and listen.__self__ is self
            )
        except AttributeError:  # a plain function set on the instance
            return False

    async def kick_decoded(self, message: TaskiqMessage) -> None:
        """Queue the decoded message (or run it, with ``await_inplace``), as `kick` its bytes.

        When nothing is queued and this broker's consumer waits for a message with room for
        one more, the message is handed to it at once, sparing it a trip through the queue.
        """
        labels = message.labels
        priority, delay = _placement(labels) if labels else (0, 0.0)
        if self._runs_in_place(message.task_name, delay):
            await self.receiver.callback(message)
        elif delay > 0 or self.queue.ready or not self.receiver.hand_over(message):
            self.queue.put(message, priority, delay)

    def _runs_in_place(self, task_name: str, delay: float) -> bool:
        """Whether a message is run now (``await_inplace``) rather than queued.

        Outside a worker process the task must be known, and a queued message needs the
        consumer running.
        """
        if self.is_worker_process:
            return False
        if self.find_task(task_name) is None:
            raise UnknownTaskError(task_name=task_name)
        if self.await_inplace and delay <= 0:
            return True
        self._ensure_consumer()
        return False

    async def kick_many(self, messages: Sequence[BrokerMessage]) -> None:
        """Queue the messages in order and wake the consumers once (all or none is queued).

        With ``await_inplace``, each runs before the next is queued, as `kick` runs it.

        Raises:
            BatchSendError: a message names a task this broker does not know (outside worker
                mode): none was sent.
        """
        if not self.is_worker_process:
            if self.await_inplace:
                await super().kick_many(messages)
                return
            for name in {message.task_name for message in messages}:
                if self.find_task(name) is None:
                    raise BatchSendError.of(
                        [], [m.task_id for m in messages], f"no task is registered as {name!r}"
                    ) from UnknownTaskError(task_name=name)
            if messages:
                self._ensure_consumer()
        self.queue.put_many((message.message, *_placement(message.labels)) for message in messages)

    async def listen(self) -> AsyncGenerator[bytes, None]:
        """Yield queued messages until the broker shuts down (then what is ready, then stop).

        A message queued decoded (`kick_decoded`) is encoded here.
        """
        taking = self._take()
        try:
            async for item in taking:
                yield item if isinstance(item, bytes) else self.formatter.dumps(item).message
        finally:
            await taking.aclose()  # now: its consumer stops being counted at once

    async def _take(self) -> AsyncGenerator[Queued, None]:
        """Yield queued messages as they were queued; `listen` without the encoding."""
        queue = self.queue
        name = f"listen-{next(self._listener_numbers)}"
        self._listeners.add(name)
        try:
            while True:
                data = queue.get_nowait()  # no coroutine to make while messages are waiting
                if data is None and (data := await queue.get()) is None:
                    return
                yield data
        finally:
            self._listeners.discard(name)

    async def inspect(self) -> QueueInspection:
        """Count the queued messages (ready, delayed) and those this broker's tasks run now.

        Messages have no acknowledgement: one taken by a ``listen()`` of another consumer is
        settled as it is taken, so ``in_flight`` counts only what this broker runs itself
        (outside a worker process). Nothing is ever dead. Each running ``listen()`` is a
        consumer.
        """
        queue = self.queue
        own = 0 if self.is_worker_process else self.receiver.running
        return QueueInspection(
            queue="memory",
            ready=queue.ready,
            delayed=queue.delayed,
            in_flight=own,
            consumers=tuple(ConsumerInfo(name) for name in sorted(self._listeners)),
        )

    async def startup(self) -> None:
        """Start the backend, middlewares and event handlers, then run this broker's messages.

        Outside a worker process it is its own worker: both ``CLIENT_STARTUP`` and
        ``WORKER_STARTUP`` handlers run.
        """
        self.queue.open()
        await super().startup()
        if not self.is_worker_process:
            await self.run_event_handlers(TaskiqEvents.WORKER_STARTUP)
            self._ensure_consumer()
            await self._consumer_ready()

    async def _consumer_ready(self) -> None:
        """Let the consumer start, so that the first messages are handed to it directly.

        A few trips through the event loop at most (it needs two): a consumer not ready by
        then takes its messages from the queue. Not when the consumer itself starts the
        broker (a ``kiq`` before `startup`).
        """
        consumer = self._consumer
        if consumer is None or consumer is asyncio.current_task():
            return
        for _ in range(_CONSUMER_START_TRIPS):
            if consumer.done() or self.receiver.consuming:
                return
            await asyncio.sleep(0)

    async def shutdown(self) -> None:
        """Run what is queued and ready, wait for running tasks, then shut everything down.

        Delayed messages that are not due yet are dropped with a warning.
        """
        dropped = self.queue.close()
        if dropped:
            logger.warning("Shutdown dropped %d delayed messages that were not due yet", dropped)
        consumer, self._consumer = self._consumer, None
        if consumer is not None and consumer.get_loop() is asyncio.get_running_loop():
            await consumer
        self.receiver.close()
        if not self._started:
            return
        if not self.is_worker_process:
            await self.run_event_handlers(TaskiqEvents.WORKER_SHUTDOWN)
        await super().shutdown()

    async def wait_all(self) -> None:
        """Wait until every message sent so far has run (delayed ones included)."""
        while len(self.queue) or self.receiver.running:
            if self.receiver.running:
                await self.receiver.wait_running()
            else:
                await asyncio.sleep(self.queue.seconds_until_due() or 0)

    def _ensure_consumer(self) -> None:
        consumer = self._consumer
        known = None if consumer is None else consumer.get_loop()
        loop = running_loop(known)
        if consumer is not None and not consumer.done() and known is loop:
            return
        self.queue.open()
        if self._own_transport():
            listening = self.receiver.listen(messages=self._take(), take_now=self.queue.get_nowait)
        else:  # through listen()
            listening = self.receiver.listen()
        self._consumer = loop.create_task(listening)


#: The broker's own `kick` and `listen`, told apart from a subclass's or a stand-in's.
_OWN_KICK = InMemoryBroker.kick
_OWN_LISTEN = InMemoryBroker.listen


def _placement(labels: dict[str, Any]) -> tuple[int, float]:
    """The priority and the delay (seconds) a message's ``labels`` ask for."""
    if not labels:
        return 0, 0.0
    return priority_value(labels.get("priority")), delay_seconds(labels.get("delay"))
