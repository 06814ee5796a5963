"""What the receiver records in the event store: a run's outcome and the worker's heartbeat."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskq.exceptions import NoResultError, TaskCancelledError, TaskRejectedError
from taskq.task_events import EventKind

if TYPE_CHECKING:
    from taskq.abc.broker import AsyncBroker
    from taskq.event_recorder import EventRecorder
    from taskq.message import TaskiqMessage
    from taskq.result import TaskiqResult
    from taskq.task_events import WorkerHeartbeat

#: Held here: ``EventKind.SUCCEEDED`` looks the member up through the enum's class each time.
_SUCCEEDED = EventKind.SUCCEEDED


def outcome_kind(error: BaseException | None) -> EventKind:
    """The event a run that ended with ``error`` records (None: it succeeded).

    `NoResultError` (no result stored on purpose) counts as a success; `TaskRejectedError`
    as a rejection and `TaskCancelledError` as a cancellation.
    """
    if error is None or isinstance(error, NoResultError):
        return EventKind.SUCCEEDED
    if isinstance(error, TaskRejectedError):
        return EventKind.REJECTED
    if isinstance(error, TaskCancelledError):
        return EventKind.CANCELLED
    return EventKind.FAILED


def record_outcome(
    recorder: EventRecorder, message: TaskiqMessage, result: TaskiqResult[Any]
) -> None:
    """Record how the run of ``message`` ended, with its duration and error."""
    error = result.error
    if error is None:  # the common case first: no classification to make
        fields = (("duration", result.execution_time),)
        recorder.record_now(_SUCCEEDED, message.task_id, message.task_name, fields)
        return
    kind = outcome_kind(error)
    duration = result.execution_time
    if kind is EventKind.SUCCEEDED:
        recorder.record(kind, message.task_id, message.task_name, duration=duration)
    else:
        recorder.record_error(kind, message.task_id, message.task_name, error, duration=duration)


def heartbeat_source(broker: AsyncBroker, concurrency: int, running: Any) -> Any:
    """A heartbeat maker for `EventRecorder.beat_with`: ``running()`` counts tasks running now."""
    broker_name = type(broker).__name__
    queue = str(getattr(broker, "queue_name", "") or "")

    def beat(recorder: EventRecorder) -> WorkerHeartbeat:
        return recorder.heartbeat(broker_name, queue, concurrency, running())

    return beat
