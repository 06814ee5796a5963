"""The exceptions taskq raises: every error a user can catch derives from `TaskiqError`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class TaskiqError(Exception):
    """Base class of every taskq error.

    Subclasses carry a message template; keyword arguments fill it and become attributes,
    so ``UnknownTaskError(task_name="x")`` reads "... task name: x" and has ``.task_name``.
    A positional message replaces the template.
    """

    __template__: ClassVar[str] = "taskq error"

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self, name, value)
        if message is None:
            try:
                message = self.__template__.format(**fields)
            except (KeyError, IndexError):
                message = self.__template__
        self.message = message
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        fields = {k: v for k, v in self.__dict__.items() if k != "message"}
        return (_rebuild_error, (type(self), self.message, fields))


def _rebuild_error(cls: type[TaskiqError], message: str, fields: dict[str, Any]) -> TaskiqError:
    return cls(message, **fields)


class TaskiqResultTimeoutError(TaskiqError):
    """Waiting for a task's result took longer than the given timeout."""

    __template__ = "waiting for the task's result timed out after {timeout} s"
    timeout: float | None = None


class BrokerError(TaskiqError):
    """Base class of errors raised by brokers."""

    __template__ = "broker error"


class ListenError(BrokerError):
    """The broker cannot listen for messages."""

    __template__ = "the broker cannot listen for messages"


class SharedBrokerListenError(ListenError):
    """`async_shared_broker` was asked to listen; it only forwards to a real broker."""

    __template__ = "the shared broker cannot listen: run a worker with a real broker instead"


class SendTaskError(BrokerError):
    """The broker could not send a task."""

    __template__ = "the task could not be sent to the broker"


class BatchSendError(SendTaskError):
    """A batch of messages failed part-way: some of them were sent, the rest perhaps not.

    ``sent_ids`` holds the task ids of the messages known to be sent (in batch order),
    ``unsent_ids`` the others: not sent, or sent without the broker knowing it (a connection
    lost before the broker confirmed). The cause is chained as ``__cause__``.
    """

    __template__ = "{sent} of the batch's {total} messages were sent before it failed: {reason}"
    sent_ids: tuple[str, ...] = ()
    unsent_ids: tuple[str, ...] = ()
    sent: int = 0
    total: int = 0
    reason: str = ""

    @classmethod
    def of(cls, sent_ids: Sequence[str], unsent_ids: Sequence[str], reason: str) -> BatchSendError:
        """The error for a batch whose messages ``sent_ids`` were sent and ``unsent_ids`` not."""
        return cls(
            sent_ids=tuple(sent_ids),
            unsent_ids=tuple(unsent_ids),
            sent=len(sent_ids),
            total=len(sent_ids) + len(unsent_ids),
            reason=reason,
        )


class SharedBrokerSendTaskError(SendTaskError):
    """A shared task was sent before `async_shared_broker.default_broker(...)` was called."""

    __template__ = (
        "a shared task was sent with no default broker: "
        "call async_shared_broker.default_broker(your_broker) first, "
        "or use task.kicker().with_broker(your_broker)"
    )


class UnknownTaskError(SendTaskError):
    """No task is registered under the given name."""

    __template__ = (
        "no task is registered under the name {task_name!r}: "
        "import the module that defines it in the worker"
    )
    task_name: str


class UnsupportedCapabilityError(SendTaskError):
    """The message asks for something (a `delay` or `priority` label) the broker cannot do."""

    __template__ = (
        "{broker} does not support {capability!r} (label {label!r}); "
        "remove the label or use a broker that declares this capability"
    )


class InspectUnsupportedError(BrokerError):
    """`AsyncBroker.inspect` was called on a broker that does not declare ``inspect``."""

    __template__ = (
        "{broker} cannot report its queue (it does not declare the 'inspect' capability); "
        "use a broker that declares it, such as RedisStreamBroker or InMemoryBroker"
    )


class InvalidLabelError(SendTaskError):
    """A ``delay``, ``priority``, ``timeout`` or ``ack_type`` label taskq cannot honour.

    ``delay``: a finite number of seconds up to 30 days; ``priority``: an integral number
    from -2**31 to 2**31 - 1; ``timeout``: a finite number of seconds; ``ack_type``: an
    acknowledgement mode (see `taskq.labels`).
    ``label``, ``value`` and ``expected`` say which label, what it held and what it takes.
    """

    __template__ = "the label {label!r} must be {expected}, got {value!r}"
    label: str
    value: Any
    expected: str


class ResultBackendError(TaskiqError):
    """Base class of errors raised by result backends."""

    __template__ = "result backend error"


class ResultGetError(ResultBackendError):
    """The result could not be read (for example, no result is stored for that task id)."""

    __template__ = "cannot get the result of the task"


class ResultSetError(ResultBackendError):
    """The result could not be stored."""

    __template__ = "cannot store the result of the task"


class ResultIsReadyError(ResultBackendError):
    """The result backend could not tell whether a result is ready."""

    __template__ = "cannot tell whether the task's result is ready"


class EventStoreError(TaskiqError):
    """An event store cannot record or answer (bad settings, bad data, an unreachable store)."""

    __template__ = "event store error"


class SecurityError(TaskiqError):
    """A security check failed."""

    __template__ = "security check failed: {description}"
    description: str


class NoResultError(TaskiqError):
    """Raised inside a task (or by `Context.requeue`) to store no result for this run."""

    __template__ = "the task asked for no result to be stored"


class TaskRetriedError(NoResultError):
    """Set by a retry middleware as the error of a failed run whose task it sent again.

    No result is stored for the run (its next run stores one), and the worker does not log
    the failure: the middleware logged it, in one line, with the retry.
    """

    __template__ = "the run failed and its task was sent again"


class MessageNotAckableError(TaskiqError, RuntimeError):
    """`Context.ack` was called for a message that cannot be acknowledged.

    The broker delivered it without an acknowledgement (plain bytes), or the task does not
    run under a receiver. A `RuntimeError` too, as taskiq raises there.
    """

    __template__ = (
        "the current message cannot be acknowledged: its broker delivers messages "
        "without acknowledgement (check Context.is_ackable first)"
    )


class TaskRejectedError(TaskiqError):
    """Raised inside a task (or by `Context.reject`) to reject its message."""

    __template__ = "the task was rejected"


class TaskBrokerMismatchError(TaskRejectedError):
    """The task is registered on a different broker than the one that received it."""

    __template__ = "the task already belongs to another broker ({broker})"
    broker: Any


class ScheduledTaskCancelledError(TaskiqError):
    """A schedule source cancelled a scheduled task before it was sent."""

    __template__ = "the scheduled task was cancelled and not sent"


class InvalidScheduleError(TaskiqError, ValueError):
    """A schedule cannot be fired: a bad cron expression or timezone, a naive datetime, ...

    Raised when the schedule is made or added to a source, never later by the scheduler loop.
    """

    __template__ = "invalid schedule: {reason}"
    reason: str


class SerializationError(TaskiqError):
    """A serializer could not encode or decode a value."""

    __template__ = "the serializer could not handle the value"


class MessageDecodeError(TaskiqError):
    """A message's bytes are not a valid taskq message.

    ``task_id`` is the message's task id when the bytes named one (a mapping whose
    ``task_id`` is a string), None otherwise: the worker stores this error as the task's
    failed result under it. ``unique_key`` is the key of a unique task when its labels
    could be read (the worker frees it), None otherwise.
    """

    __template__ = "the message's bytes are not a valid taskq message: {reason}"
    reason: str
    task_id: str | None = None
    unique_key: str | None = None


class TaskArgumentsError(TaskiqError):
    """The message's arguments do not fit the task's signature or annotated types."""

    __template__ = "the arguments do not fit task {task_name!r}: {reason}"
    task_name: str
    reason: str


class TaskTimeoutError(TaskiqError, TimeoutError):
    """The task ran longer than its `timeout` label allows."""

    __template__ = "the task ran longer than its timeout of {timeout} s"
    timeout: float


class TaskCancelledError(TaskiqError):
    """The task was cancelled before or while it ran; its result is a failed one with this error.

    ``task_id`` is the cancelled task's id and ``reason`` what the canceller gave (may be empty).
    """

    __template__ = "task {task_id} was cancelled"
    task_id: str
    reason: str = ""


class CancellationUnavailableError(TaskiqError):
    """A cancellation was asked of a broker that has no cancellation store."""

    __template__ = (
        "{broker} has no cancellation store: give it one with broker.with_cancellation(...) "
        "(see the 'Controlling tasks' documentation page)"
    )
    broker: str


class TaskExitError(TaskiqError):
    """Task code raised SystemExit, KeyboardInterrupt, CancelledError or another BaseException.

    ``sys.exit()`` in a task, a ``KeyboardInterrupt`` it raises, a ``CancelledError`` it raises
    itself (not the worker cancelling it) or any other exception that is not an `Exception`
    would stop the worker; instead the run fails with this error and the worker goes on.
    ``exception`` is the original's repr (``SystemExit(3)``), ``exception_type`` its qualified
    type name and ``advice`` what to do instead; where the run happened, the original is the
    ``__cause__``.
    """

    __template__ = "task code raised {exception}: {advice}"
    exception: str
    exception_type: str
    advice: str


class RemoteTaskError(TaskiqError):
    """A task failed with an exception whose type cannot be rebuilt where the result is read.

    ``type_name`` holds the original exception's qualified type name.
    """

    __template__ = "{type_name}: {text}"
    type_name: str
    text: str


class InvalidTaskLimitError(TaskiqError, ValueError):
    """A task's ``rate_limit``, ``max_concurrency`` or ``limit_key`` is not a valid setting."""

    __template__ = "the task option {option!r} must be {expected}, got {value!r}"
    option: str
    value: Any
    expected: str


class SharedStoreRequiredError(TaskiqError):
    """A broker running in several processes was given no shared store for a limit or a key.

    In-process stores are only used by default where every worker shares one process.
    """

    __template__ = (
        "{broker} runs tasks in several processes, so {feature} needs a store they share: "
        "give the broker one with broker.{builder}(...) (a Redis one for many hosts)"
    )
    broker: str
    feature: str
    builder: str


class UniqueKeyError(TaskiqError, ValueError):
    """A unique task's key could not be made from its arguments: give ``with_unique(key=...)``."""

    __template__ = (
        "the arguments of task {task_name!r} cannot be made into a unique key ({reason}): "
        "give one with .with_unique(key=...)"
    )
    task_name: str
    reason: str
