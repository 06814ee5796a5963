"""`AsyncKicker`: builds a task message, runs the send middlewares and hands it to the broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from typing_extensions import ParamSpec, Self

from taskq._awaitable import maybe_await
from taskq.capabilities import LABEL_CAPABILITIES
from taskq.control.unique import (
    DEFAULT_UNIQUE_TTL_S,
    UNIQUE_TTL_LABEL,
    Uniqueness,
    claim_key,
    release_quietly,
    send_unique,
)
from taskq.created_schedule import CreatedSchedule
from taskq.exceptions import (
    BatchSendError,
    SendTaskError,
    TaskiqError,
    UnknownTaskError,
    UnsupportedCapabilityError,
)
from taskq.labels import UNIQUE_LABEL, check_labels
from taskq.message import BrokerMessage, TaskiqMessage
from taskq.remote_error import error_line
from taskq.scheduled_task import CronSpec, ScheduledTask
from taskq.task import AsyncTaskiqTask
from taskq.task_call import TaskCall

if TYPE_CHECKING:
    from taskq.abc.schedule_source import ScheduleSource
    from taskq.broker import AsyncBroker

_Params = ParamSpec("_Params")
_ReturnType = TypeVar("_ReturnType")
_Value = TypeVar("_Value")

#: Messages `kiq_many` hands to the broker's `kick_many` at once, unless told otherwise.
DEFAULT_CHUNK_SIZE = 1000


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

    @overload
    async def kiq_many(
        self: AsyncKicker[_Params, Coroutine[Any, Any, _Value]],
        calls: Iterable[TaskCall[_Params]],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> list[AsyncTaskiqTask[_Value]]: ...

    @overload
    async def kiq_many(
        self: AsyncKicker[_Params, _Value],
        calls: Iterable[TaskCall[_Params]],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> list[AsyncTaskiqTask[_Value]]: ...

    async def kiq_many(self, calls: Any, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Any:
        """Send one task per call (``task.call(...)``); return their handles, in order.

        Each message gets this kicker's labels, broker and uniqueness. The messages reach the
        broker ``chunk_size`` at a time, each chunk in one `AsyncBroker.kick_many` (one round
        trip on a broker declaring ``batch_send``); the send middlewares see every message.
        With ``with_unique``, each call claims its key as `kiq` would: a call whose key is
        held sends nothing and gets the holder's handle. An empty ``calls`` sends nothing.

        Building the messages raises what `kiq` raises, as long as nothing was sent; the
        broker failing to send, and any failure once a chunk was sent, raises
        `BatchSendError`, naming the sent tasks (``sent_ids``); the calls after the failing
        chunk are not sent. `ValueError` after ``with_task_id`` (one id cannot
        name many tasks: give each call its id with `TaskCall.with_task_id`) or for a
        ``chunk_size`` below 1.
        """
        if self.custom_task_id is not None:
            raise ValueError(
                "with_task_id names one task, kiq_many sends many: give each call its own id "
                "with task.call(...).with_task_id(...)"
            )
        return await send_many(
            self.broker,
            self.task_name,
            self.labels,
            calls,
            self.return_type,
            chunk_size=chunk_size,
            uniqueness=self.uniqueness,
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
    (see `taskq.control.unique`). ``kwargs`` becomes the message's: a dict the caller keeps
    must be copied first (a worker of this process may get the message itself).

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
    if hooks["pre_send"]:  # the hooks' coroutine only when there are hooks: the hot path
        message = await _run_pre_send(hooks["pre_send"], message)
    if message.labels:  # as the ``pre_send`` hooks left them
        _check_labels(broker, message.labels)
    # what a worker would decode, for a broker taking it so (see `AsyncBroker.kick_decoded`)
    decoded = broker.formatter.decoded_copy(message) if broker.takes_decoded() else None
    if decoded is message and (hooks["pre_send"] or hooks["post_send"]):
        decoded = TaskiqMessage(message.task_id, message.task_name)  # hooks may keep the sent one
    sent_id = message.task_id  # a worker running the message itself may change it meanwhile
    encoded: BrokerMessage | None
    if decoded is None:
        encoded = broker.formatter.dumps(message)
        sending = broker.kick(encoded)
    else:  # a broker running its messages here takes them as they would be decoded
        # the sent event keeps the bytes a worker would have got: encoded for it alone
        encoded = None if broker.event_recorder is None else broker.formatter.dumps(message)
        sending = broker.kick_decoded(decoded)
    sent_at = time.time()  # before the kick: a worker may receive the task before it returns
    try:
        await sending
    except TaskiqError:
        raise
    except Exception as exc:
        raise SendTaskError(f"{type(broker).__name__} could not send: {error_line(exc)}") from exc
    if encoded is not None:
        _record_sent(broker, encoded, sent_at)
    if hooks["post_send"]:
        await _run_post_send(hooks["post_send"], message)
    return AsyncTaskiqTask(sent_id, broker.result_backend, return_type, broker)


async def send_many(
    broker: AsyncBroker,
    task_name: str,
    labels: dict[str, Any],
    calls: Iterable[TaskCall[...]],
    return_type: Any = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    uniqueness: Uniqueness | None = None,
) -> list[AsyncTaskiqTask[Any]]:
    """Send one task per call, ``chunk_size`` messages per `AsyncBroker.kick_many`.

    Each message goes through the send middlewares and the label checks as `send_task`'s
    does; the handles come back in the order of ``calls``. With ``uniqueness``, each call
    claims its key first (see `taskq.control.unique`): a call whose key is held sends
    nothing and gets the holder's handle. ``calls`` is read as the chunks fill up, so a
    generator of a million calls is never held at once; without ``pre_send`` hooks and
    uniqueness, the next chunk is built while one is sent (see `_Sending`).

    Raises:
        ValueError: ``chunk_size`` is below 1.
        TypeError: an item of ``calls`` is not a `TaskCall`.
        BatchSendError: some messages were sent, then one failed: the error names the sent
            tasks (``sent_ids``, over the whole call) and those of the failing chunk that were
            not (``unsent_ids``); the calls after that chunk were not sent.
    """
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of messages, got {chunk_size!r}")
    if uniqueness is None and UNIQUE_TTL_LABEL in labels:
        labels = dict(labels)
        uniqueness = Uniqueness.take_from(labels)
    broker = broker.target_broker()
    handles: list[AsyncTaskiqTask[Any]] = []
    sent_ids: list[str] = []
    chunk = _Chunk(broker, task_name, labels, uniqueness, return_type)
    # building a chunk while the one before it is sent is seen by no one without these
    sending = _Sending(sent_ids, ahead=not chunk.pre_send and uniqueness is None)
    try:
        for call in calls:
            try:
                handles.append(await chunk.add(call))
                if sending.needs_turn:
                    await sending.turn()
            except Exception as exc:
                await sending.finished(chunk)
                await chunk.release_claims(chunk.task_ids)
                if not sent_ids:
                    raise  # nothing was sent: the error kiq would raise
                raise BatchSendError.of(sent_ids, chunk.task_ids, _reason(exc)) from exc
            if len(chunk.broker_messages) >= chunk_size:
                await sending.finished(chunk)
                await sending.start(chunk)
                chunk = _Chunk(broker, task_name, labels, uniqueness, return_type)
        await sending.finished(chunk)
        await chunk.send(sent_ids)
    finally:
        sending.cancel()
    return handles


class _Sending:
    """The chunk of `send_many` in flight, while the next one is built if ``ahead``.

    Ahead, the server takes a chunk while the client encodes the next: the send starts as a
    task, and the first `TURNS_TO_START_A_SEND` calls of the next chunk give the event loop
    a turn each so that it reaches the wire. A chunk waits for the one before it, so the
    chunks reach the broker one at a time and in order. Not ahead (``pre_send`` hooks or
    unique keys would see the next chunk built before the send's outcome is known), each
    chunk is sent before the next is built.
    """

    #: Turns of the event loop a send takes to write its chunk (building the next one does
    #: not give the loop any); a few more than it takes cost a little, fewer cost the overlap.
    TURNS_TO_START_A_SEND = 4

    def __init__(self, sent_ids: list[str], *, ahead: bool) -> None:
        self.sent_ids = sent_ids
        self.ahead = ahead
        self.task: asyncio.Task[None] | None = None
        self.turns_left = 0

    @property
    def needs_turn(self) -> bool:
        """Whether the send in flight may not have reached the wire yet."""
        return self.turns_left > 0

    async def turn(self) -> None:
        """Give the event loop a turn, for the send in flight."""
        self.turns_left -= 1
        await asyncio.sleep(0)

    async def start(self, chunk: _Chunk) -> None:
        """Send ``chunk``: in a task of its own when ahead, else now."""
        if not self.ahead:
            await chunk.send(self.sent_ids)
            return
        self.task = asyncio.ensure_future(chunk.send(self.sent_ids))
        self.turns_left = self.TURNS_TO_START_A_SEND

    async def finished(self, built: _Chunk) -> None:
        """Wait for the send in flight; if it failed, free ``built``'s claims and raise."""
        task, self.task, self.turns_left = self.task, None, 0
        if task is None:
            return
        try:
            await task
        except BaseException:
            await built.release_claims(built.task_ids)
            raise

    def cancel(self) -> None:
        """Cancel the send in flight (``send_many`` itself was cancelled or failed)."""
        if self.task is not None:
            self.task.cancel()


class _Chunk:
    """The messages of one `kick_many` of `send_many`, built one call at a time.

    Only what the kick and the after-send steps need is kept: the decoded messages only when
    ``post_send`` hooks will see them.
    """

    def __init__(
        self,
        broker: AsyncBroker,
        task_name: str,
        labels: dict[str, Any],
        uniqueness: Uniqueness | None,
        return_type: Any,
    ) -> None:
        self.broker = broker
        self.task_name = task_name
        self.labels = labels
        self.uniqueness = uniqueness
        self.return_type = return_type
        self.broker_messages: list[BrokerMessage] = []
        self.pre_send = broker.middleware_hooks["pre_send"]
        self.post_send = broker.middleware_hooks["post_send"]
        self.messages: list[TaskiqMessage] = []  # for the post_send hooks, if any
        self.claimed: dict[str, str] = {}  # task id -> the unique key it holds

    @property
    def task_ids(self) -> list[str]:
        """The ids of the chunk's messages, in call order."""
        return [message.task_id for message in self.broker_messages]

    async def add(self, call: TaskCall[...]) -> AsyncTaskiqTask[Any]:
        """Build the message of ``call``; return its handle (a unique call's holder's, if held)."""
        if not isinstance(call, TaskCall):
            raise TypeError(f"kiq_many takes the values of task.call(...), got {call!r}")
        broker = self.broker
        task_id = call.task_id or broker.id_generator()
        labels = self.labels
        if self.uniqueness is not None:
            key, holder = await claim_key(
                broker, self.uniqueness, self.task_name, call.args, call.kwargs, task_id
            )
            if holder is not None:
                return AsyncTaskiqTask(holder, broker.result_backend, self.return_type, broker)
            self.claimed[task_id] = key
            labels = {**labels, UNIQUE_LABEL: key}
        args, kwargs = list(call.args), dict(call.kwargs)
        message = TaskiqMessage(task_id, self.task_name, dict(labels), args, kwargs)
        if self.pre_send:
            message = await _run_pre_send(self.pre_send, message)
        broker_message = _encode(broker, message)
        self.broker_messages.append(broker_message)
        if self.post_send:
            self.messages.append(message)
        return AsyncTaskiqTask(message.task_id, broker.result_backend, self.return_type, broker)

    async def send(self, sent_ids: list[str]) -> None:
        """Kick the chunk and run the after-send steps of each sent message.

        ``sent_ids`` (the tasks sent before this chunk) gets the ids of this chunk's sent ones.

        Raises:
            BatchSendError: not every message was sent; ``sent_ids`` names those sent so far,
                ``unsent_ids`` this chunk's others.
        """
        if not self.broker_messages:
            return
        sent_at = time.time()  # before the kick: a worker may receive a task before it returns
        try:
            await self.broker.kick_many(self.broker_messages)
        except Exception as exc:
            sent = set(exc.sent_ids) if isinstance(exc, BatchSendError) else set()
            sent_ids.extend(await self._after_send(sent, sent_at))
            unsent = [m.task_id for m in self.broker_messages if m.task_id not in sent]
            await self.release_claims(unsent)
            cause = exc.__cause__ if isinstance(exc, BatchSendError) and exc.__cause__ else exc
            raise BatchSendError.of(sent_ids, unsent, _reason(exc)) from cause
        sent_ids.extend(await self._after_send(None, sent_at))

    async def _after_send(self, sent: set[str] | None, sent_at: float) -> list[str]:
        """Record and hand to the post_send hooks the messages in ``sent`` (None: all).

        Returns their ids, in call order.
        """
        broker = self.broker
        ids = []
        for n, broker_message in enumerate(self.broker_messages):
            if sent is None or broker_message.task_id in sent:
                _record_sent(broker, broker_message, sent_at)
                if self.messages:
                    await _run_post_send(self.post_send, self.messages[n])
                ids.append(broker_message.task_id)
        return ids

    async def release_claims(self, task_ids: list[str]) -> None:
        """Free the unique keys claimed for ``task_ids``, whose messages were not sent."""
        for task_id in task_ids:
            key = self.claimed.get(task_id)
            if key is not None:
                await release_quietly(self.broker, key, task_id)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BatchSendError):
        return exc.reason
    return error_line(exc)


async def _run_pre_send(hooks: list[Any], message: TaskiqMessage) -> TaskiqMessage:
    for hook in hooks:
        message = await maybe_await(hook(message))
    return message


def _encode(broker: AsyncBroker, message: TaskiqMessage) -> BrokerMessage:
    """Check the labels of ``message`` (as the ``pre_send`` hooks left them) and encode it."""
    if message.labels:
        _check_labels(broker, message.labels)
    return broker.formatter.dumps(message)


def _record_sent(broker: AsyncBroker, broker_message: BrokerMessage, sent_at: float) -> None:
    """Record the ``sent`` event of a sent message (if the broker records events)."""
    recorder = broker.event_recorder
    if recorder is not None:
        recorder.record_sent(
            broker_message.task_id, broker_message.task_name, sent_at, broker_message.message
        )


async def _run_post_send(hooks: list[Any], message: TaskiqMessage) -> None:
    for hook in hooks:
        await maybe_await(hook(message))


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
