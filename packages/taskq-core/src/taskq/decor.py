"""`AsyncTaskiqDecoratedTask`: what ``@broker.task`` returns; call it here or send it away."""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from typing_extensions import ParamSpec

from taskq.kicker import DEFAULT_CHUNK_SIZE, AsyncKicker, send_many, send_task
from taskq.task_call import TaskCall

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from taskq.abc.schedule_source import ScheduleSource
    from taskq.broker import AsyncBroker
    from taskq.control.limits import TaskLimits
    from taskq.created_schedule import CreatedSchedule
    from taskq.scheduled_task import CronSpec
    from taskq.task import AsyncTaskiqTask

_Params = ParamSpec("_Params")
_ReturnType = TypeVar("_ReturnType")
_Value = TypeVar("_Value")

_UNKNOWN: Any = object()


class AsyncTaskiqDecoratedTask(Generic[_Params, _ReturnType]):
    """A registered task.

    Calling it runs the function here; ``await task.kiq(...)`` sends it to a worker and
    returns an `AsyncTaskiqTask`; ``task.kicker()`` sends it with extra labels or a task id.
    """

    #: The task's rate and concurrency limits (None: none), set by `AsyncBroker.register_task`.
    limits: TaskLimits | None = None

    def __init__(
        self,
        broker: AsyncBroker,
        task_name: str,
        original_func: Callable[_Params, _ReturnType],
        labels: dict[str, Any],
        return_type: Any = _UNKNOWN,
    ) -> None:
        """Wrap ``original_func`` as task ``task_name`` of ``broker`` with default ``labels``."""
        self.broker = broker
        self.task_name = task_name
        self.original_func = original_func
        self.labels = labels
        self._return_type = return_type
        functools.update_wrapper(self, original_func)

    @property
    def return_type(self) -> Any:
        """The function's return annotation (None when it has none or it cannot be resolved)."""
        if self._return_type is _UNKNOWN:
            try:
                hints = typing.get_type_hints(self.original_func)
            except Exception:
                hints = {}
            self._return_type = hints.get("return")
        return self._return_type

    def __call__(self, *args: _Params.args, **kwargs: _Params.kwargs) -> _ReturnType:
        """Run the function here, as if it were not a task."""
        return self.original_func(*args, **kwargs)

    @overload
    def kiq(
        self: AsyncTaskiqDecoratedTask[_Params, Coroutine[Any, Any, _Value]],
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> Coroutine[Any, Any, AsyncTaskiqTask[_Value]]: ...

    @overload
    def kiq(
        self: AsyncTaskiqDecoratedTask[_Params, _Value],
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> Coroutine[Any, Any, AsyncTaskiqTask[_Value]]: ...

    def kiq(self, *args: Any, **kwargs: Any) -> Any:
        """Send the task to a worker: ``await task.kiq(...)`` returns a handle on its result."""
        # a plain function returning the coroutine: one await less on the hottest path
        return_type = self._return_type
        if return_type is _UNKNOWN:
            return_type = self.return_type
        return send_task(self.broker, self.task_name, self.labels, args, kwargs, return_type)

    def call(self, *args: _Params.args, **kwargs: _Params.kwargs) -> TaskCall[_Params]:
        """The arguments of one call of this task, for `kiq_many` (nothing is sent here)."""
        return TaskCall(args, kwargs)

    @overload
    async def kiq_many(
        self: AsyncTaskiqDecoratedTask[_Params, Coroutine[Any, Any, _Value]],
        calls: Iterable[TaskCall[_Params]],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> list[AsyncTaskiqTask[_Value]]: ...

    @overload
    async def kiq_many(
        self: AsyncTaskiqDecoratedTask[_Params, _Value],
        calls: Iterable[TaskCall[_Params]],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> list[AsyncTaskiqTask[_Value]]: ...

    async def kiq_many(self, calls: Any, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Any:
        """Send one task per call (``task.call(...)``); return their handles, in order.

        ``await task.kiq_many(task.call(n) for n in range(100))``: the messages reach the
        broker ``chunk_size`` at a time, each chunk in one `AsyncBroker.kick_many` (see
        `AsyncKicker.kiq_many`, which also takes the kicker's labels).
        """
        return await send_many(
            self.broker,
            self.task_name,
            self.labels,
            calls,
            self.return_type,
            chunk_size=chunk_size,
        )

    def kicker(self) -> AsyncKicker[_Params, _ReturnType]:
        """Return a kicker to send this task with extra labels, a task id or another broker."""
        return AsyncKicker(self.task_name, self.broker, self.labels, self.return_type)

    async def schedule_by_cron(
        self,
        source: ScheduleSource,
        cron: str | CronSpec,
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> CreatedSchedule[_ReturnType]:
        """Add a cron schedule of this task to ``source`` (see `AsyncKicker.schedule_by_cron`)."""
        return await self.kicker().schedule_by_cron(source, cron, *args, **kwargs)

    async def schedule_by_time(
        self,
        source: ScheduleSource,
        time: datetime,
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> CreatedSchedule[_ReturnType]:
        """Add a one-shot schedule of this task to ``source`` (`AsyncKicker.schedule_by_time`)."""
        return await self.kicker().schedule_by_time(source, time, *args, **kwargs)

    async def schedule_by_interval(
        self,
        source: ScheduleSource,
        interval: int | float | timedelta,
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> CreatedSchedule[_ReturnType]:
        """Add an interval schedule of this task to ``source`` (see `AsyncKicker`)."""
        return await self.kicker().schedule_by_interval(source, interval, *args, **kwargs)

    def __repr__(self) -> str:
        return f"AsyncTaskiqDecoratedTask({self.task_name!r})"
