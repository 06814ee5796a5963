"""`AsyncKicker`: builds a task message, runs the send middlewares and hands it to the broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from typing_extensions import ParamSpec, Self

from taskq._awaitable import maybe_await
from taskq.capabilities import LABEL_CAPABILITIES
from taskq.control.unique import (
    DEFAULT_UNIQUE_TTL_S,
    UNIQUE_TTL_LABEL,
    Uniqueness,
    send_unique,
)
from taskq.created_schedule import CreatedSchedule
from taskq.exceptions import (
    SendTaskError,
    TaskiqError,
    UnknownTaskError,
    UnsupportedCapabilityError,
)
from taskq.labels import check_labels
from taskq.message import TaskiqMessage
from taskq.scheduled_task import CronSpec, ScheduledTask
from taskq.task import AsyncTaskiqTask

if TYPE_CHECKING:
    from taskq.abc.schedule_source import ScheduleSource
    from taskq.broker import AsyncBroker

_Params = ParamSpec("_Params")
_ReturnType = TypeVar("_ReturnType")
_Value = TypeVar("_Value")


class AsyncKicker(Generic[_Params, _ReturnType]):
    """Sends one task with extra labels, a chosen task id or another broker.

    Get one from ``task.kicker()``; the ``with_*`` methods return the same kicker.
    """

    def __init__(
        self,
        task_name: str,
        broker: AsyncBroker,
        labels: dict[str, Any],
        return_type: Any = None,
    ) -> None:
        """Prepare to send task ``task_name`` through ``broker`` with ``labels``."""
        self.task_name = task_name
        self.broker = broker
        self.labels = dict(labels)
        self.return_type = return_type
        self.custom_task_id: str | None = None
        self.custom_schedule_id: str | None = None
        self.uniqueness: Uniqueness | None = None

    def with_labels(self, **labels: Any) -> Self:
        """Add (or override) labels of the message."""
        self.labels.update(labels)
        return self

    def with_task_id(self, task_id: str) -> Self:
        """Send the message under ``task_id`` instead of a generated one."""
        self.custom_task_id = task_id
        return self

    def with_schedule_id(self, schedule_id: str) -> Self:
        """Add the next schedule under ``schedule_id`` (adding it again replaces it)."""
        self.custom_schedule_id = schedule_id
        return self

    def with_unique(
        self, key: str | None = None, ttl: float | timedelta = DEFAULT_UNIQUE_TTL_S
    ) -> Self:
        """Send the task only if no task with the same key is queued or running.

        While one is, `kiq` sends nothing and returns that task's handle. ``key`` defaults to
        the task's name and its arguments; the key is freed when the task ends, or after
        ``ttl`` (seconds or a timedelta; default one hour). A schedule added by this kicker
        carries the request in its labels: each of its sends is unique the same way. See
        `taskq.control.unique`.

        Raises:
            ValueError: ``ttl`` is not positive or ``key`` is empty.
        """
        self.uniqueness = Uniqueness.of(key, ttl)
        return self

    def with_broker(self, broker: AsyncBroker) -> Self:
        """Send through ``broker`` instead of the task's own broker."""
        self.broker = broker
        return self

    @overload
    async def kiq(
        self: AsyncKicker[_Params, Coroutine[Any, Any, _Value]],
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> AsyncTaskiqTask[_Value]: ...

    @overload
    async def kiq(
        self: AsyncKicker[_Params, _Value],
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> AsyncTaskiqTask[_Value]: ...

    async def kiq(self, *args: Any, **kwargs: Any) -> Any:
        """Send the task with these arguments; return a handle to wait for its result.

        Raises `UnsupportedCapabilityError` for a ``delay``/``priority`` label the broker
        cannot honour, `InvalidLabelError` for a ``delay``, ``priority`` or ``timeout`` label
        outside its bounds (see `taskq.labels`), `SerializationError` for an argument the
        serializer cannot encode and `SendTaskError` when the broker fails to send; for a
        unique task, `UniqueKeyError` for arguments without a canonical form and
        `SharedStoreRequiredError` for a broker without a shared unique key store.
        """
        if self.uniqueness is not None:
            return await send_unique(
                self.broker,
                self.uniqueness,
                self.task_name,
                self.labels,
                args,
                kwargs,
                self.return_type,
                self.custom_task_id,
            )
        return await send_task(
            self.broker,
            self.task_name,
            self.labels,
            args,
            kwargs,
            self.return_type,
            self.custom_task_id,
        )

    async def schedule_by_cron(
        self,
        source: ScheduleSource,
        cron: str | CronSpec,
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> CreatedSchedule[_ReturnType]:
        """Add a schedule to ``source`` sending the task on the cron expression ``cron``.

        Five fields (minute resolution) or six (a seconds field first); a `CronSpec` also
        gives the timezone. Raises `UnknownTaskError` for a task this process does not know
        and `InvalidScheduleError` (from the source) for an expression or timezone the
        scheduler could not use.
        """
        if isinstance(cron, CronSpec):
            return await self._add_schedule(
                source, args, kwargs, cron=cron.to_cron(), cron_offset=cron.offset
            )
        return await self._add_schedule(source, args, kwargs, cron=cron)

    async def schedule_by_time(
        self,
        source: ScheduleSource,
        time: datetime,
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> CreatedSchedule[_ReturnType]:
        """Add a schedule to ``source`` sending the task once, at the aware datetime ``time``.

        Raises `InvalidScheduleError` for a naive datetime and `UnknownTaskError` for a task
        this process does not know.
        """
        return await self._add_schedule(source, args, kwargs, time=time)

    async def schedule_by_interval(
        self,
        source: ScheduleSource,
        interval: int | float | timedelta,
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> CreatedSchedule[_ReturnType]:
        """Add a schedule to ``source`` sending the task every ``interval`` (seconds, >= 1).

        Raises `InvalidScheduleError` for a shorter interval and `UnknownTaskError` for a task
        this process does not know.
        """
        return await self._add_schedule(source, args, kwargs, interval=interval)

    async def _add_schedule(
        self,
        source: ScheduleSource,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        **when: Any,
    ) -> CreatedSchedule[_ReturnType]:
        check_task_known(self.broker, self.task_name)
        labels = dict(self.labels)
        if self.uniqueness is not None:
            labels.update(self.uniqueness.as_labels())
        schedule = ScheduledTask(
            task_name=self.task_name,
            labels=labels,
            args=list(args),
            kwargs=dict(kwargs),
            task_id=self.custom_task_id,
            schedule_id=self.custom_schedule_id or uuid.uuid4().hex,
            **when,
        )
        await source.add_schedule(schedule)
        return CreatedSchedule(self, source, schedule)

    def __repr__(self) -> str:
        return f"AsyncKicker({self.task_name!r}, labels={self.labels!r})"


async def send_task(
    broker: AsyncBroker,
    task_name: str,
    labels: dict[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    return_type: Any = None,
    task_id: str | None = None,
) -> AsyncTaskiqTask[Any]:
    """Build the message, run the send middlewares, kick it; return a handle on the result.

    Labels with a `UNIQUE_TTL_LABEL` (a schedule of a unique kicker) make it a unique send
    (see `taskq.control.unique`).

    Raises:
        ValueError: the unique labels ask for no valid TTL or key.
    """
    if UNIQUE_TTL_LABEL in labels:
        labels = dict(labels)
        uniqueness = Uniqueness.take_from(labels)
        return await send_unique(
            broker, uniqueness, task_name, labels, args, kwargs, return_type, task_id
        )
    broker = broker.target_broker()
    message = TaskiqMessage(
        task_id or broker.id_generator(), task_name, dict(labels), list(args), kwargs
    )
    hooks = broker.middleware_hooks
    for hook in hooks["pre_send"]:
        message = await maybe_await(hook(message))
    if message.labels:
        _check_labels(broker, message.labels)
    broker_message = broker.formatter.dumps(message)
    recorder = broker.event_recorder
    sent_at = time.time()  # before the kick: a worker may receive the task before it returns
    try:
        await broker.kick(broker_message)
    except TaskiqError:
        raise
    except Exception as exc:
        raise SendTaskError(f"{type(broker).__name__} could not send: {exc!r}") from exc
    if recorder is not None:
        recorder.record_sent(message.task_id, message.task_name, sent_at, broker_message.message)
    for hook in hooks["post_send"]:
        await maybe_await(hook(message))
    return AsyncTaskiqTask(message.task_id, broker.result_backend, return_type, broker)


def check_task_known(broker: AsyncBroker, task_name: str) -> None:
    """Raise `UnknownTaskError` unless ``broker`` (or the broker it sends through) has the task.

    Shared tasks are known to every broker; through `async_shared_broker`, the tasks of its
    default broker are known too.
    """
    if broker.find_task(task_name) is not None:
        return
    try:
        target = broker.target_broker()
    except TaskiqError:
        target = broker
    if target.find_task(task_name) is None:
        raise UnknownTaskError(
            f"no task is registered under the name {task_name!r}: a schedule can only name a "
            "task this process has registered (import the module that defines it)",
            task_name=task_name,
        )


def _check_labels(broker: AsyncBroker, labels: dict[str, Any]) -> None:
    for label, capability in LABEL_CAPABILITIES.items():
        if labels.get(label) and capability not in broker.capabilities:  # 0 asks for nothing
            raise UnsupportedCapabilityError(
                broker=type(broker).__name__, capability=capability.value, label=label
            )
    check_labels(labels)
