"""The receiver: what a worker does with each message, step by step, and its consume loop."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, NamedTuple

from taskq._awaitable import maybe_await
from taskq._cancelling import cancel_until_done
from taskq._running_loop import running_loop
from taskq.acks import AckableMessage, AckController, AcknowledgeType
from taskq.checks import check_count, check_seconds
from taskq.control.unique import HeldKey, running_key
from taskq.exceptions import (
    InvalidLabelError,
    MessageDecodeError,
    NoResultError,
    ResultSetError,
    SharedStoreRequiredError,
    TaskArgumentsError,
    TaskCancelledError,
    TaskiqError,
    TaskRejectedError,
    TaskRetriedError,
    UnknownTaskError,
)
from taskq.labels import ack_type_value
from taskq.log_context import current_task
from taskq.memory_cancellation import InMemoryCancellationStore
from taskq.message import TaskiqMessage
from taskq.receiver.cancel_watch import CancelWatch
from taskq.receiver.eager import start_task
from taskq.receiver.execution import CONTROL_FLOW, DEFAULT_THREADPOOL_THREADS, TaskExecutor
from taskq.receiver.in_turn import InTurnBackoff, run_in_turn
from taskq.receiver.interrupts import MessageTask, reraise_cancellation, task_failure
from taskq.receiver.limits import admit
from taskq.receiver.recording import heartbeat_source, record_outcome
from taskq.receiver.slots import Slots
from taskq.receiver.store_outage import StoreOutageLog
from taskq.receiver.task_log import log_failure, log_task
from taskq.remote_error import error_line
from taskq.result import TaskiqResult
from taskq.task_events import EventKind, stored_task_id, stored_task_name

if TYPE_CHECKING:
    from taskq.abc.broker import AsyncBroker
    from taskq.abc.cancellation import Cancellation, CancellationStore
    from taskq.cancel_token import CancelToken
    from taskq.control.limits import TaskLimits
    from taskq.decor import AsyncTaskiqDecoratedTask

logger = logging.getLogger("taskq.receiver")

#: Messages taken in a row before the consume loop lets other coroutines run.
_YIELD_EVERY = 64

DEFAULT_MAX_ASYNC_TASKS = 100

#: Ack modes whose message is settled when its task ends (not before, not by the task).
_SETTLED_AT_THE_END = (AcknowledgeType.WHEN_EXECUTED, AcknowledgeType.WHEN_SAVED)

#: Python 3.10 has no Task.cancelling(): `callback` runs each message in a task of its own.
_OWN_TASK_PER_MESSAGE = sys.version_info < (3, 11)
#: The events recorded for each message, held here: ``EventKind.RECEIVED`` looks the member
#: up through the enum's class each time, at several times the cost of a global name.
_RECEIVED, _STARTED = EventKind.RECEIVED, EventKind.STARTED
#: The ack modes compared for each message, held here for the same reason.
_WHEN_RECEIVED, _WHEN_EXECUTED, _WHEN_SAVED, _MANUAL = (
    AcknowledgeType.WHEN_RECEIVED,
    AcknowledgeType.WHEN_EXECUTED,
    AcknowledgeType.WHEN_SAVED,
    AcknowledgeType.MANUAL,
)


class Receiver:
    """Runs the messages a broker delivers: the worker's engine.

    For each message: decode → find the task → (with a cancellation store on the broker) not
    run if cancelled, else run cancellably → wait for the task's rate and concurrency limits,
    if it has any (`taskq.receiver.limits`) → ``pre_execute`` → bind, cast and inject
    arguments → run (async on the loop, sync in the thread pool) under the ``timeout`` label
    → ``post_execute`` / ``on_error`` → store the result → ``post_save`` → free a unique
    task's key, acknowledging where ``ack_type`` says. Bad input (undecodable bytes, an
    unknown task, arguments that do not fit) is logged once, stored as a failed result when
    the task id is known, and settled; the receiver goes on. So does a task that exits
    (``sys.exit()``, ``KeyboardInterrupt``, a ``CancelledError`` of its own): its run fails
    with `TaskExitError`. A message whose processing ends neither acknowledged nor rejected is
    released for redelivery; only the cancellation of its asyncio task leaves it as it is.

    ``max_async_tasks`` bounds the tasks running at once (plus a random 0 to
    ``max_async_tasks_jitter`` drawn once per receiver, so that workers started together do
    not reach their limits together) and ``max_prefetch`` the messages taken from the broker
    beyond those. A task's ``ack_type`` label overrides ``ack_type`` for its messages.
    ``run_startup``: `listen` first starts the broker if it is not started yet.
    ``log_tasks``: log one INFO line per run (``taskq.tasks`` logger); ``failure_log_level``:
    the level of the record, with its traceback, a task's failure is logged as (a failure
    a retry middleware sent again, `TaskRetriedError`, is that middleware's to log).
    ``on_exit(receiver)`` is called when `listen` returns.
    """

    def __init__(
        self,
        broker: AsyncBroker,
        executor: Executor | None = None,
        validate_params: bool = True,
        max_async_tasks: int | None = None,
        max_async_tasks_jitter: int = 0,
        max_prefetch: int = 0,
        propagate_exceptions: bool = True,
        run_startup: bool = True,
        ack_type: AcknowledgeType | str | None = None,
        on_exit: Callable[[Receiver], None] | None = None,
        max_tasks_to_execute: int | None = None,
        wait_tasks_timeout: float | None = None,
        max_threadpool_threads: int | None = None,
        log_tasks: bool = False,
        failure_log_level: int = logging.ERROR,
    ) -> None:
        """Prepare to run ``broker``'s messages (see the class docstring for the options)."""
        check_count("max_prefetch", max_prefetch, minimum=0)
        if max_async_tasks is not None:
            check_count("max_async_tasks", max_async_tasks, alternative="or None")
        check_count("max_async_tasks_jitter", max_async_tasks_jitter, minimum=0)
        if max_tasks_to_execute is not None:
            check_count("max_tasks_to_execute", max_tasks_to_execute, minimum=0)
        if wait_tasks_timeout is not None:
            check_seconds(
                "wait_tasks_timeout", wait_tasks_timeout, zero=True, alternative="or None"
            )
        self.broker = broker
        self.ack_type = AcknowledgeType(ack_type or AcknowledgeType.WHEN_SAVED)
        self.run_startup = run_startup
        self.on_exit = on_exit
        self.max_async_tasks = (max_async_tasks or DEFAULT_MAX_ASYNC_TASKS) + _jitter(
            max_async_tasks_jitter
        )
        self.max_prefetch = max_prefetch
        self.max_tasks_to_execute = max_tasks_to_execute or None  # 0: no limit, as in taskiq
        self.wait_tasks_timeout = wait_tasks_timeout
        self.task_executor = TaskExecutor(
            broker,
            executor,
            validate_params,
            propagate_exceptions,
            max_threadpool_threads or DEFAULT_THREADPOOL_THREADS,
        )
        #: The level of the one record (with its traceback) a task's failure is logged as.
        self.failure_log_level = failure_log_level
        self.log_tasks = log_tasks
        self._store_outage = StoreOutageLog()
        self._running: set[asyncio.Task[None]] = set()
        self._in_turn_backoff = InTurnBackoff()
        # at most max_async_tasks + max_prefetch are unfinished: forgetting the finished
        # ones each time the set doubles costs O(1) per message
        self._forget_done_at = 2 * (self.max_async_tasks + max_prefetch)
        self._run_slots: asyncio.Semaphore | None = None
        self._watch: CancelWatch | None = None
        # while the consume loop runs: what `hand_over` needs to run a message in its place
        # (its slots, its loop, the context its message tasks start from)
        self._consuming: _Consuming | None = None

    # -- one message --------------------------------------------------------------------------

    async def callback(self, message: bytes | str | AckableMessage | TaskiqMessage) -> None:
        """Process one received message to the end; never raises for a bad message.

        A `TaskiqMessage` is taken as decoded already (see `AsyncBroker.kick_decoded`). Only
        the cancellation of the calling task goes through (the message is then left
        unsettled, as a stopping worker leaves it).
        """
        if _OWN_TASK_PER_MESSAGE:  # pragma: no cover - Python 3.10
            await MessageTask(self._run_message(message, None), loop=asyncio.get_running_loop())
        else:
            await self._run_message(message, None)

    async def _run_message(
        self, message: bytes | str | AckableMessage | TaskiqMessage, slots: Slots | None
    ) -> None:
        # frees the consume loop's slot itself: a done callback would cost the event loop
        # one more trip per message
        acker = AckController(message)
        try:
            await self._process(message, acker)
        except BaseException as exc:
            reraise_cancellation(exc)  # a cancelled message is left unsettled
            logger.exception("Unexpected error while processing a message; the worker goes on")
        finally:
            if slots is not None:
                slots.give_back()
        if acker.is_ackable and not acker.is_acked:
            await self._release(acker)

    async def _release(self, acker: AckController) -> None:
        """Hand back a message whose processing ended neither acknowledged nor rejected."""
        try:
            await acker.release()
        except Exception:
            logger.exception("A message could not be released for redelivery")

    async def _process(
        self, raw: bytes | str | AckableMessage | TaskiqMessage, acker: AckController
    ) -> None:
        """Decode, find the task, skip it if it was cancelled, then run it when allowed.

        One coroutine for these steps: each coroutine more is paid by every message.
        """
        message = raw if type(raw) is TaskiqMessage else self._decode(raw)
        broker = self.broker
        recorder = broker.event_recorder
        if not isinstance(message, TaskiqMessage):
            if recorder is not None and message.task_id is not None:
                recorder.record_error(EventKind.REJECTED, message.task_id, "", message)
            await self._refuse_undecodable(message, acker)
            return
        task_id = message.task_id
        if recorder is not None:
            recorder.record_now(_RECEIVED, task_id, message.task_name)
        context = current_task.set((task_id, message.task_name))
        labels = message.labels
        held = HeldKey.of(message) if labels else None
        # None (no key) is what the context holds unless a task runs a message in place
        holding = None if held is None and running_key.get() is None else running_key.set(held)
        try:
            task = broker.find_task(message.task_name)
            if task is None:
                # the name as the event store keeps it: a name of megabytes is not quoted
                # whole in the log, the failed result and the dead letter's reason
                error: Exception = UnknownTaskError(task_name=stored_task_name(message.task_name))
                logger.error("Task %s: %s", stored_task_id(task_id), error)
                await self._refuse(message, error, acker)
                return
            ack_type = self.ack_type
            if labels and "ack_type" in labels:
                try:
                    ack_type = ack_type_value(labels["ack_type"])
                except InvalidLabelError as invalid:
                    logger.error("Task %s: %s", stored_task_id(task_id), invalid)
                    await self._refuse(message, invalid, acker)
                    return
            if held is not None and ack_type in _SETTLED_AT_THE_END:  # free it with that settle
                key = held
                acker.settle_along(lambda: key.free(broker))
            store = broker.cancellation
            if store is None:
                await self._run_when_allowed(task, message, acker, ack_type, None)
                return
            watch = self._watch
            if watch is None or watch.store is not store:
                watch = self._watch_for(store)
            token = watch.register(task_id)  # before the check: no cancellation is missed
            try:
                if type(store) is InMemoryCancellationStore:  # no I/O: no coroutine to run
                    cancellation = store.cancellation_now(task_id)
                else:
                    cancellation = await _cancellation_of(store, task_id)
                if cancellation is None:
                    await self._run_when_allowed(task, message, acker, ack_type, token)
                else:
                    await self._skip_cancelled(message, token, cancellation.reason, acker)
            finally:
                watch.unregister(token)
        except BaseException:
            held = None  # unsettled by an error or a cancellation: it runs again later
            raise
        finally:
            if holding is not None:
                running_key.reset(holding)
            current_task.reset(context)
            # here, not after: each step above may end the message with a return
            if held is not None and (acker.is_acked or not acker.is_ackable):
                await held.free(broker)  # the task ended; unsettled, it runs again later

    async def _skip_cancelled(
        self, message: TaskiqMessage, token: CancelToken, reason: str, acker: AckController
    ) -> None:
        """Store a message cancelled before it started as cancelled, and settle it for good."""
        logger.info("Task %s was cancelled before it started", stored_task_id(message.task_id))
        token.cancel(reason)
        cancelled = token.error()
        recorder = self.broker.event_recorder
        if recorder is not None:
            recorder.record_error(
                EventKind.CANCELLED, message.task_id, message.task_name, cancelled
            )
        await self._store_failure(message, cancelled)
        await acker.ack()  # settled for good: a cancelled message is not delivered again

    def _run_when_allowed(
        self,
        task: AsyncTaskiqDecoratedTask[Any, Any],
        message: TaskiqMessage,
        acker: AckController,
        ack_type: AcknowledgeType,
        token: CancelToken | None,
    ) -> Coroutine[Any, Any, None]:
        """`_run` once the task's rate and concurrency limits allow it, if it has any.

        A plain function returning the coroutine: no coroutine of its own for a task without
        limits, the usual case.
        """
        limits: TaskLimits | None = task.limits
        if limits is None:
            return self._run(task, message, acker, ack_type, token)
        return self._run_limited(task, limits, message, acker, ack_type, token)

    async def _run_limited(
        self,
        task: AsyncTaskiqDecoratedTask[Any, Any],
        limits: TaskLimits,
        message: TaskiqMessage,
        acker: AckController,
        ack_type: AcknowledgeType,
        token: CancelToken | None,
    ) -> None:
        """`_run` once the task's rate and concurrency ``limits`` allow it."""
        try:
            admission = await admit(self.broker, limits, message, acker)
        except (TaskArgumentsError, SharedStoreRequiredError) as error:  # retrying cannot help
            logger.error("Task %s: %s", stored_task_id(message.task_id), error)
            await self._refuse(message, error, acker)
            return
        except TaskiqError as error:  # the limiter's store failed: the message is left unsettled
            logger.error(
                "Task %s: its limits could not be checked (%s); %s",
                stored_task_id(message.task_id),
                error,
                "it goes back to the broker" if acker.is_ackable else "its message is dropped",
            )
            return
        if admission is None:  # sent back to wait
            return
        try:
            await self._run(task, message, acker, ack_type, token)
        finally:
            await admission.release()

    async def _run(
        self,
        task: AsyncTaskiqDecoratedTask[Any, Any],
        message: TaskiqMessage,
        acker: AckController,
        ack_type: AcknowledgeType,
        token: CancelToken | None,
    ) -> None:
        """Run the task and settle its message: hooks, result, acknowledgement."""
        if ack_type is _WHEN_RECEIVED:
            await acker.ack()
        hooks = self.broker.middleware_hooks
        hook = None
        try:
            for hook in hooks["pre_execute"]:
                message = await maybe_await(hook(message))
        except BaseException as exc:
            failure = task_failure(exc)
            logger.exception(
                "Task %s: a pre_execute middleware failed", stored_task_id(message.task_id)
            )
            await self._close_started(message, failure, hooks, hook)
            await self._refuse(message, failure, acker)
            return
        recorder = self.broker.event_recorder
        if recorder is not None:
            recorder.record_now(_STARTED, message.task_id, message.task_name)
        if self._run_slots is None:
            result = await self.task_executor.run(task, message, acker, token)
        else:
            async with self._run_slots:
                result = await self.task_executor.run(task, message, acker, token)
        # what follows the run, inline: a coroutine of its own would cost every message
        recorder = self.broker.event_recorder
        if recorder is not None:  # before the middlewares, so a retry is recorded after it
            record_outcome(recorder, message, result)
        if self.log_tasks:
            log_task(message, result)
        raised = result.error
        if hooks["post_execute"] or hooks["on_error"]:
            await self._after_run(message, result, hooks)
        error = result.error
        # after the middlewares: a retry middleware that sent the task again logged it
        if (
            raised is not None
            and not isinstance(raised, CONTROL_FLOW)
            and not isinstance(error, TaskRetriedError)
        ):
            log_failure(message, raised, self.failure_log_level)
        if error is not None and isinstance(error, TaskRejectedError):
            logger.info("Task %s rejected its message", stored_task_id(message.task_id))
            await acker.reject(rejection_reason(error))
            return
        if ack_type is _WHEN_EXECUTED:
            await acker.ack()
        if error is None or not isinstance(error, NoResultError):
            try:  # `_save` inline: the common case costs no coroutine of its own
                await self.broker.result_backend.set_result(message.task_id, result)
            except Exception as exc:
                if not await self._save_instead(message, result, exc):
                    return  # nothing stored: an unsettled message is released for redelivery
            if self._store_outage.failures:
                self._store_outage.stored()
            if hooks["post_save"]:
                await self._call_hooks(hooks["post_save"], message, result)
        cancelled = error is not None and isinstance(error, TaskCancelledError)
        if (ack_type is _WHEN_SAVED or cancelled) and acker.is_ackable:
            await acker.ack()  # a cancelled message is settled in every mode: never redelivered
        elif ack_type is _MANUAL and acker.is_ackable and not acker.is_acked:
            logger.warning(
                "Task %s ended without acknowledging its message (ack mode manual): "
                "it is released for redelivery",
                stored_task_id(message.task_id),
            )

    def _watch_for(self, store: CancellationStore) -> CancelWatch:
        """The watch of the broker's cancellation store (a new one if the store was replaced)."""
        if self._watch is None or self._watch.store is not store:
            self._watch = CancelWatch(store)
        return self._watch

    def _decode(
        self, raw: bytes | str | AckableMessage | TaskiqMessage
    ) -> TaskiqMessage | MessageDecodeError:
        if isinstance(raw, TaskiqMessage):  # decoded by the formatter already, without bytes
            return raw
        data = raw.data if isinstance(raw, AckableMessage) else raw
        try:
            if isinstance(data, str):
                data = data.encode()  # a lone surrogate fails here: bad input like the rest
            return self.broker.formatter.loads(data)
        except MessageDecodeError as exc:
            error = exc
        except Exception as exc:  # a formatter of another kind
            error = MessageDecodeError(reason=repr(exc))
        if error.task_id is None:
            logger.error(
                "Rejecting a message that cannot be decoded (%d bytes): %s", len(data), error
            )
        else:
            logger.error(
                "Task %s: rejecting a message that cannot be decoded (%d bytes): %s",
                stored_task_id(error.task_id),
                len(data),
                error,
            )
        return error

    async def _refuse(self, message: TaskiqMessage, error: Exception, acker: AckController) -> None:
        """Store ``error`` as the task's failed result, record the rejection, reject."""
        recorder = self.broker.event_recorder
        if recorder is not None:
            recorder.record_error(EventKind.REJECTED, message.task_id, message.task_name, error)
        await self._store_failure(message, error)
        await acker.reject(rejection_reason(error))

    async def _refuse_undecodable(self, error: MessageDecodeError, acker: AckController) -> None:
        """Store ``error`` as the failed result where the task id is known; reject; free its key."""
        if error.task_id is not None:
            await self._store_failure(TaskiqMessage(error.task_id, ""), error)
        await acker.reject(rejection_reason(error))
        if error.task_id is not None and error.unique_key is not None:
            await HeldKey(error.unique_key, error.task_id).free(self.broker)

    async def _close_started(
        self, message: TaskiqMessage, failure: Exception, hooks: dict[str, list[Any]], failed: Any
    ) -> None:
        """Run ``post_execute`` of the middlewares whose ``pre_execute`` ran before ``failed``.

        What they opened for the run (a span, a running-tasks gauge) is closed: the task does
        not run, and without this each message refused by a later middleware left it open.
        """
        pre = hooks["pre_execute"]
        started = {id(getattr(hook, "__self__", hook)) for hook in pre[: pre.index(failed)]}
        if not started:
            return
        result = _failed_result(message, failure, 0.0)
        try:
            for hook in hooks["post_execute"]:
                if id(getattr(hook, "__self__", hook)) in started:
                    await maybe_await(hook(message, result))
        except BaseException as exc:
            reraise_cancellation(exc)
            logger.exception(
                "Task %s: a middleware failed after another refused the message",
                stored_task_id(message.task_id),
            )

    async def _after_run(
        self, message: TaskiqMessage, result: TaskiqResult[Any], hooks: dict[str, list[Any]]
    ) -> None:
        """Run post_execute, then on_error if the task failed (not for NoResult/Rejected).

        A middleware asks for no result to be stored by setting ``result.error`` to a
        `NoResultError` or by raising one.
        """
        error = result.error
        try:
            for hook in hooks["post_execute"]:
                await maybe_await(hook(message, result))
            if error is not None and not isinstance(error, CONTROL_FLOW):
                for hook in hooks["on_error"]:
                    await maybe_await(hook(message, result, error))
        except NoResultError as no_result:
            result.error = no_result
        except BaseException as exc:
            reraise_cancellation(exc)
            logger.exception(
                "Task %s: a middleware failed after the run", stored_task_id(message.task_id)
            )

    async def _call_hooks(
        self, hooks: list[Any], message: TaskiqMessage, result: TaskiqResult[Any]
    ) -> None:
        try:
            for hook in hooks:
                await maybe_await(hook(message, result))
        except BaseException as exc:
            reraise_cancellation(exc)
            logger.exception(
                "Task %s: a post_save middleware failed", stored_task_id(message.task_id)
            )

    async def _save(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> bool:
        """Store ``result``; if it cannot be stored, store an error saying why instead."""
        try:
            await self.broker.result_backend.set_result(message.task_id, result)
        except Exception as exc:
            if not await self._save_instead(message, result, exc):
                return False
        if self._store_outage.failures:
            self._store_outage.stored()
        return True

    async def _save_instead(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exc: Exception
    ) -> bool:
        """After storing ``result`` failed with ``exc``: store it, or an error saying why.

        The error result is stored only when the backend answers and still refuses ``result``
        (one that cannot be encoded, say): a backend that is down may be back in a moment, and
        an error stored then would end for good a task that, released, runs again. False when
        nothing was stored.
        """
        backend = self.broker.result_backend
        task_id = stored_task_id(message.task_id)
        try:
            await backend.is_result_ready(message.task_id)  # does the backend answer at all?
        except Exception as unanswered:
            self._store_outage.failed(
                task_id,
                f"the result could not be stored ({exc}), and the result backend does not "
                f"answer ({unanswered!r}); an unsettled message is released for redelivery",
            )
            return False
        try:
            await backend.set_result(message.task_id, result)  # it may be back since the first
        except Exception as again:
            reason = f"the result could not be stored: {again}"
        else:
            logger.warning("Task %s: the result was stored on a second try (%r)", task_id, exc)
            return True
        failure = _failed_result(message, ResultSetError(reason), result.execution_time)
        try:
            await backend.set_result(message.task_id, failure)
        except Exception as failed:
            self._store_outage.failed(
                task_id,
                f"{reason}; storing that error failed too ({failed!r}); an unsettled message "
                "is released for redelivery",
            )
            return False
        logger.error("Task %s: %s; an error result was stored instead", task_id, reason)
        return True

    async def _store_failure(self, message: TaskiqMessage, error: Exception) -> None:
        await self._save(message, _failed_result(message, error, 0.0))

    # -- the consume loop ---------------------------------------------------------------------

    async def listen(
        self,
        finish_event: asyncio.Event | None = None,
        messages: AsyncIterator[bytes | AckableMessage | TaskiqMessage] | None = None,
        take_now: Callable[[], bytes | AckableMessage | TaskiqMessage | None] | None = None,
    ) -> None:
        """Run messages from ``broker.listen()`` until it ends or ``finish_event`` is set.

        ``messages`` replaces ``broker.listen()``: a broker running its own messages passes
        one that yields decoded ones too (see `AsyncBroker.kick_decoded`). ``take_now``, if
        given, takes the next of those ``messages`` without waiting (None when none is
        ready): once ``messages`` gave one, the loop asks it first, sparing a step of the
        iterator per message, and the messages it has ready at once run in turn in one
        asyncio task while they do not wait (see `taskq.receiver.in_turn`).

        No message is taken without a free slot, so stopping never strands a taken message
        in this process. Tasks still running then get ``wait_tasks_timeout`` seconds
        (None: as long as they need) to finish, store their results and be acknowledged.
        With ``run_startup``, an unstarted broker is started first; ``on_exit`` is called
        at the end.
        """
        if self.run_startup and not self.broker.is_started:
            await self.broker.startup()
        if self.broker.event_recorder is not None:
            self.broker.event_recorder.beat_with(
                heartbeat_source(self.broker, self.max_async_tasks, lambda: self.running)
            )
        store = self.broker.cancellation
        watch = None if store is None else self._watch_for(store)
        if watch is not None:
            watch.start()
        try:
            await self._listen_until(finish_event, messages, take_now)
        finally:
            if watch is not None:
                await watch.stop()
        if self.on_exit is not None:
            self.on_exit(self)

    async def _listen_until(
        self,
        finish_event: asyncio.Event | None,
        messages: AsyncIterator[bytes | AckableMessage | TaskiqMessage] | None,
        take_now: Callable[[], bytes | AckableMessage | TaskiqMessage | None] | None,
    ) -> None:
        consumer = asyncio.create_task(self._consume(messages, take_now))
        if finish_event is not None:
            stopper = asyncio.create_task(finish_event.wait())
            await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            await cancel_until_done(consumer)
        try:
            await consumer
        except asyncio.CancelledError:
            if finish_event is None or not finish_event.is_set():
                raise
        await self.wait_running(self.wait_tasks_timeout)

    async def _consume(
        self,
        source: AsyncIterator[bytes | AckableMessage | TaskiqMessage] | None,
        take_now: Callable[[], bytes | AckableMessage | TaskiqMessage | None] | None,
    ) -> None:
        # with no prefetch, the fetch slots alone bound the running tasks
        self._run_slots = asyncio.Semaphore(self.max_async_tasks) if self.max_prefetch else None
        fetch_slots = Slots(self.max_async_tasks + self.max_prefetch)
        self.broker.worker_capacity = self.max_async_tasks + self.max_prefetch
        messages = (self.broker.listen() if source is None else source).__aiter__()
        loop = asyncio.get_running_loop()  # once: before 3.12 each call is a system call
        if self.max_tasks_to_execute is None:  # else each message must be counted here
            self._consuming = _Consuming(fetch_slots, loop, contextvars.copy_context())
        try:
            await self._take_and_spawn(messages, fetch_slots, loop, take_now)
        finally:
            self._consuming = None

    async def _take_and_spawn(
        self,
        messages: AsyncIterator[bytes | AckableMessage | TaskiqMessage],
        fetch_slots: Slots,
        loop: asyncio.AbstractEventLoop,
        take_now: Callable[[], bytes | AckableMessage | TaskiqMessage | None] | None,
    ) -> None:
        taken = since_yield = 0
        while self.max_tasks_to_execute is None or taken < self.max_tasks_to_execute:
            if fetch_slots.free <= 0:
                await fetch_slots.wait_free()
                since_yield = 0
            elif since_yield >= _YIELD_EVERY:
                await asyncio.sleep(0)  # a backlog of instant messages must not starve the loop
                since_yield = 0
            since_yield += 1
            # only once the iterator started: it may do something first (count a consumer)
            message = take_now() if take_now is not None and taken else None
            if message is None:
                try:
                    message = await messages.__anext__()
                except StopAsyncIteration:
                    return
            taken += 1
            fetch_slots.free -= 1  # taken: given back when the message is done
            if (
                take_now is None  # no list per message for the brokers that cannot
                or self.max_tasks_to_execute is not None
                or not self._in_turn_backoff.in_turn()
            ):
                self._spawn(message, fetch_slots, loop)
                continue
            # the messages ready at once too run in turn in one task (`run_in_turn`)
            batch = [message]
            _take_ready(batch, take_now, fetch_slots, _YIELD_EVERY - since_yield)
            since_yield += len(batch) - 1
            taken += len(batch) - 1
            if len(batch) == 1:
                self._spawn(message, fetch_slots, loop)
            else:
                self._spawn_in_turn(batch, fetch_slots, loop)

    def hand_over(self, message: bytes | AckableMessage | TaskiqMessage) -> bool:
        """Have ``message`` run as the consume loop would once it took it.

        Only while the loop runs (in this thread's running event loop) and has a slot free
        beyond the one it may be about to fill; else False, and the message goes through
        the broker. A broker running its own messages thus spares the loop a wake-up per
        message. The message runs as if the loop had taken it: it holds one of its slots,
        in a context copied from the loop's. It starts at the loop's next turn, never inside
        this call, so the sender's ``kiq`` (and its ``post_send`` hooks) finish first, and a
        chain of tasks each sending the next never nests one run inside another.
        """
        consuming = self._consuming
        if (
            consuming is None
            or consuming.slots.free <= 1
            or running_loop(consuming.loop) is not consuming.loop
        ):
            return False
        consuming.slots.free -= 1
        self._spawn(message, consuming.slots, consuming.loop, consuming.context.copy(), eager=False)
        return True

    def _spawn_in_turn(
        self,
        batch: list[bytes | AckableMessage | TaskiqMessage],
        slots: Slots,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """Run ``batch`` in one task while its messages do not wait (`run_in_turn`)."""

        def process(message: bytes | AckableMessage | TaskiqMessage) -> Coroutine[Any, Any, None]:
            return self._run_message(message, slots)

        def spawn_each(rest: Sequence[bytes | AckableMessage | TaskiqMessage]) -> None:
            for message in rest:
                self._spawn(message, slots, loop)

        running = run_in_turn(batch, process, spawn_each, self._in_turn_backoff)
        self._track(start_task(running, loop))

    @property
    def consuming(self) -> bool:
        """Whether the consume loop runs and takes messages handed over (`hand_over`)."""
        return self._consuming is not None

    def _spawn(
        self,
        message: bytes | AckableMessage | TaskiqMessage,
        slots: Slots,
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context | None = None,
        *,
        eager: bool = True,
    ) -> None:
        self._track(start_task(self._run_message(message, slots), loop, context, eager=eager))

    def _track(self, running: asyncio.Task[None] | None) -> None:
        """Keep ``running``, a task running messages, among those `wait_running` waits for."""
        if running is None:  # done without waiting
            return
        if len(self._running) >= self._forget_done_at:
            self._running = set(self._unfinished())
        self._running.add(running)

    @property
    def running(self) -> int:
        """How many messages this receiver is processing now."""
        return len(self._unfinished())

    async def wait_running(self, timeout: float | None = None) -> None:
        """Wait for the tasks this receiver is running (at most ``timeout`` seconds)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        # again until none is left: a task running messages in turn may start another
        while unfinished := self._unfinished():
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return
            await asyncio.wait(unfinished, timeout=left)

    def _unfinished(self) -> list[asyncio.Task[None]]:
        # finished tasks are forgotten lazily (see _spawn), not one by one as they finish
        return [task for task in self._running if not task.done()]

    def close(self) -> None:
        """Release the thread pool this receiver made for sync tasks (if it made one)."""
        self.task_executor.close()


class _Consuming(NamedTuple):
    """The consume loop's state `Receiver.hand_over` runs a message with."""

    slots: Slots
    loop: asyncio.AbstractEventLoop
    context: contextvars.Context


def _take_ready(
    batch: list[bytes | AckableMessage | TaskiqMessage],
    take_now: Callable[[], bytes | AckableMessage | TaskiqMessage | None],
    slots: Slots,
    room: int,
) -> None:
    """Add to ``batch`` what ``take_now`` has ready, ``room`` messages at most, a slot each."""
    while room > 0 and slots.free > 0 and (more := take_now()) is not None:
        batch.append(more)
        slots.free -= 1
        room -= 1


async def _cancellation_of(store: CancellationStore, task_id: str) -> Cancellation | None:
    """The cancellation ``store`` holds for ``task_id``; None, with a warning, if it cannot tell."""
    try:
        return await store.cancellation(task_id)
    except Exception as exc:
        logger.warning(
            "Task %s: cannot check whether it was cancelled (%s); it runs",
            stored_task_id(task_id),
            error_line(exc),
        )
        return None


def _jitter(max_jitter: int) -> int:
    """A random 0 to ``max_jitter`` spreading the concurrency limits of workers apart."""
    return random.randint(0, max_jitter) if max_jitter else 0


def _failed_result(
    message: TaskiqMessage, error: Exception, execution_time: float
) -> TaskiqResult[Any]:
    return TaskiqResult(
        is_err=True,
        return_value=None,
        execution_time=execution_time,
        labels=message.labels,
        error=error,
    )


def rejection_reason(error: BaseException) -> str:
    """The reason a rejected message carries to the dead letters: the error's type and text."""
    return error_line(error)
