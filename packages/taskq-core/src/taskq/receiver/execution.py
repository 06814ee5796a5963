"""Running one task function: dependencies, arguments, sync or async, under its timeout."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
from collections.abc import Awaitable
from concurrent.futures import Executor, ThreadPoolExecutor
from time import perf_counter
from typing import TYPE_CHECKING, Any

from taskq._running_loop import running_loop
from taskq.context import Context
from taskq.exceptions import (
    NoResultError,
    TaskArgumentsError,
    TaskRejectedError,
    TaskTimeoutError,
)
from taskq.labels import timeout_seconds
from taskq.receiver.handoff import ThreadHandoff
from taskq.receiver.interrupts import reraise_cancellation, task_failure
from taskq.receiver.signature import TaskSignature
from taskq.result import TaskiqResult, result_of_run
from taskq.state import TaskiqState

if TYPE_CHECKING:
    from taskq.abc.broker import AsyncBroker
    from taskq.acks import AckController
    from taskq.cancel_token import CancelToken
    from taskq.decor import AsyncTaskiqDecoratedTask
    from taskq.message import TaskiqMessage

logger = logging.getLogger("taskq.receiver")

DEFAULT_THREADPOOL_THREADS = 8

#: Exceptions a task raises to steer the receiver rather than to fail.
CONTROL_FLOW = (NoResultError, TaskRejectedError)


class TaskExecutor:
    """Runs task functions for a receiver and turns what happened into a `TaskiqResult`."""

    def __init__(
        self,
        broker: AsyncBroker,
        executor: Executor | None,
        cast_types: bool,
        propagate_exceptions: bool,
        threads: int = DEFAULT_THREADPOOL_THREADS,
    ) -> None:
        """Run tasks of ``broker``; sync functions go to ``executor``.

        Without an executor, a pool of ``threads`` threads is made on the first sync task
        and released by `close`.
        """
        self.broker = broker
        self._given_executor = executor
        self._own_pool: ThreadPoolExecutor | None = None
        self.threads = threads
        self.cast_types = cast_types
        self.propagate_exceptions = propagate_exceptions
        self._signatures: dict[str, TaskSignature] = {}
        self._thread_handoff: ThreadHandoff | None = None

    async def run(
        self,
        task: AsyncTaskiqDecoratedTask[Any, Any],
        message: TaskiqMessage,
        acker: AckController,
        token: CancelToken | None = None,
    ) -> TaskiqResult[Any]:
        """Run ``task`` for ``message`` and return its result (``error`` set when it raised).

        With a ``token``, cancelling it stops an async task (the result's error is then a
        `TaskCancelledError`); a sync task reads it through ``Context.cancelled``.
        """
        signature = self._signatures.get(task.task_name)
        if signature is None or signature.func is not task.original_func:
            signature = self.signature_of(task)
        started = perf_counter()
        value: Any = None
        error: BaseException | None = None
        resolver = None
        try:
            if signature.has_parameters or message.args or message.kwargs:
                args, kwargs = signature.bind(message.task_name, message.args, message.kwargs)
            else:
                args, kwargs = [], {}
            if signature.graph is not None:
                resolver = signature.graph.async_ctx(
                    {
                        Context: Context(message, self.broker, acker, token),
                        TaskiqState: self.broker.state,
                        **self.broker.custom_dependency_context,
                    },
                    self.broker.dependency_overrides or None,
                )
                injected = await resolver.resolve_kwargs()
                _check_injected(message.task_name, signature, injected)
                kwargs.update(injected)
            labels = message.labels
            timeout = timeout_seconds(labels["timeout"]) if "timeout" in labels else None
            if signature.is_async and timeout is None:
                call = signature.func(*args, **kwargs)
                value = await (call if token is None else token.run(call))
                if value is not None and inspect.isawaitable(value):  # awaited, as in taskiq
                    value = await (_awaited(value) if token is None else token.run(_awaited(value)))
            else:
                value = await self._call(signature, args, kwargs, timeout, token)
        except Exception as exc:
            error = exc
        except BaseException as exc:  # sys.exit() & co.; the task's cancellation goes on up
            error = task_failure(exc)
        elapsed = perf_counter() - started
        if resolver is not None:
            await self._close(resolver, error)
        return result_of_run(value, elapsed, message.labels, error)

    def executor(self) -> Executor:
        """The executor sync tasks run in."""
        if self._given_executor is not None:
            return self._given_executor
        if self._own_pool is None:
            self._own_pool = ThreadPoolExecutor(self.threads, thread_name_prefix="taskq-sync")
        return self._own_pool

    def _handoff(self) -> ThreadHandoff:
        """The hand-off of sync calls to the running loop (made again for a new loop)."""
        handoff = self._thread_handoff
        known = None if handoff is None else handoff.loop
        loop = running_loop(known)
        if handoff is None or known is not loop:
            handoff = self._thread_handoff = ThreadHandoff(loop)
        return handoff

    def close(self) -> None:
        """Release the thread pool this executor made (a later sync task makes a new one)."""
        pool, self._own_pool = self._own_pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    def signature_of(self, task: AsyncTaskiqDecoratedTask[Any, Any]) -> TaskSignature:
        """Return the prepared signature of ``task`` (inspected once per function)."""
        signature = self._signatures.get(task.task_name)
        if signature is None or signature.func is not task.original_func:
            signature = TaskSignature(task.original_func, self.cast_types)
            self._signatures[task.task_name] = signature
        return signature

    async def _call(
        self,
        signature: TaskSignature,
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: float | None,
        token: CancelToken | None = None,
    ) -> Any:
        if signature.is_async:
            pending = _settled(signature.func(*args, **kwargs))
            if token is not None:
                pending = token.run(pending)
        else:
            run = contextvars.copy_context().run
            running = self._handoff().run(
                self.executor(), functools.partial(run, signature.func, *args, **kwargs)
            )
            if timeout is None:  # the common sync run: no coroutine more on its path
                value = await running
                return (await value) if inspect.isawaitable(value) else value
            pending = _settled(running)
        if timeout is not None:  # before 3.12 wait_for runs it in a task of its own
            pending = _contained(pending)
        if timeout is None:
            value = await pending
        else:
            try:
                value = await asyncio.wait_for(pending, timeout)
            except asyncio.TimeoutError:
                raise TaskTimeoutError(timeout=timeout) from None
        return value

    async def _close(self, resolver: Any, error: BaseException | None) -> None:
        exc_info: tuple[Any, ...] = (None, None, None)
        if error is not None and self.propagate_exceptions:
            exc_info = (type(error), error, error.__traceback__)
        try:
            await resolver.close(*exc_info)
        except BaseException as exc:
            reraise_cancellation(exc)
            logger.exception("A dependency failed while closing")


async def _settled(pending: Awaitable[Any]) -> Any:
    """Await ``pending``, then what it gave if that is awaitable (a task returning a coroutine).

    taskiq awaits what a task returns when it can be; so does the receiver, within the
    task's timeout.
    """
    value = await pending
    return (await value) if inspect.isawaitable(value) else value


async def _awaited(pending: Awaitable[Any]) -> Any:
    """Await ``pending``: any awaitable as a coroutine."""
    return await pending


async def _contained(coro: Any) -> Any:
    """Await ``coro``, turning SystemExit and KeyboardInterrupt into a `TaskExitError`.

    Raised in a task of its own, those two would escape the event loop and end the worker.
    """
    try:
        return await coro
    except (SystemExit, KeyboardInterrupt) as exc:
        raise task_failure(exc)  # noqa: B904 - the original is its __cause__


def _check_injected(task_name: str, signature: TaskSignature, injected: dict[str, Any]) -> None:
    missing = signature.dependency_names - injected.keys()
    if missing:
        raise TaskArgumentsError(
            task_name=task_name,
            reason=f"dependencies {sorted(missing)} could not be resolved "
            "(are their type hints importable at module level?)",
        )
