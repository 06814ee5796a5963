"""What each page shows, as JSON-ready data read from the event store and the broker.

Every page of the dashboard is drawn from one of these functions, and the JSON API returns
them as they are: the API is the page's data.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskq import DummyResultBackend
from taskq.abc.dead_letters import dead_letters_of
from taskq.exceptions import EventStoreError, TaskiqError
from taskq.task_events import EventKind, TaskEvent, TaskQuery, TaskSummary, WorkerId
from taskq.toolkit import collect_status, encode_error
from taskq_dashboard.errors import DashboardError
from taskq_dashboard.features import can_cancel, can_inspect
from taskq_dashboard.task_messages import sent_message

if TYPE_CHECKING:
    from taskq.message import TaskiqMessage
    from taskq_dashboard.state import DashboardState

#: Minutes the overview's charts cover.
CHART_MINUTES = 60
#: Seconds of queue depths the overview keeps (the broker reports only the present).
DEPTH_HISTORY_S = CHART_MINUTES * 60.0
#: Largest page of tasks one request may ask for.
MAX_PAGE = 500
#: Tasks shown as running now, per worker.
RUNNING_SHOWN = 10


async def overview(state: DashboardState) -> dict[str, Any]:
    """Throughput and failures per minute over the last hour, queue depths, workers, failures."""
    now = time.time()
    report = await collect_status(
        state.store, state.broker, stale_after=state.settings.stale_after, now=now
    )
    rates = await state.store.rates(CHART_MINUTES, now=now)
    data = report.as_dict()
    data["minutes"] = [
        {
            "minute": rate.minute,
            "succeeded": rate.count(EventKind.SUCCEEDED),
            "failed": rate.count(EventKind.FAILED),
        }
        for rate in rates
    ]
    data["features"] = features(state)
    data["queue_history"] = _depth_history(state, report.queue, now)
    return data


def _depth_history(state: DashboardState, queue: Any, now: float) -> list[dict[str, float]]:
    """The queue depths seen by this dashboard over the last hour, with the present one."""
    history = state.depth_history
    if queue is not None:  # timed now: the overview's reads may finish out of order
        history.append((time.time(), queue.ready, queue.delayed, queue.in_flight, queue.dead))
    while history and history[0][0] < now - DEPTH_HISTORY_S:
        history.popleft()
    names = ("time", "ready", "delayed", "in_flight", "dead")
    return [dict(zip(names, row, strict=True)) for row in history]


def features(state: DashboardState) -> dict[str, bool]:
    """Which pages and actions the broker, the scheduler and the settings allow."""
    writable = not state.settings.read_only
    return {
        "inspect": can_inspect(state.broker),
        "cancel": writable and can_cancel(state.broker),
        "dead_letters": dead_letters_of(state.broker) is not None,
        "dead_letter_actions": writable and dead_letters_of(state.broker) is not None,
        "schedules": state.scheduler is not None,
        "schedule_actions": writable and state.scheduler is not None,
        "read_only": state.settings.read_only,
    }


def task_query(params: Mapping[str, str]) -> TaskQuery:
    """The `TaskQuery` of a request's query string: name, state, worker, since, until, cursor."""
    try:
        return TaskQuery(
            state=EventKind(params["state"]) if params.get("state") else None,
            name=params.get("name") or None,
            worker=WorkerId.parse(params["worker"]) if params.get("worker") else None,
            since=float(params["since"]) if params.get("since") else None,
            until=float(params["until"]) if params.get("until") else None,
            limit=min(int(params.get("limit") or 50), MAX_PAGE),
            cursor=params.get("cursor") or None,
        )
    except (ValueError, EventStoreError) as error:
        raise DashboardError(f"bad task filter: {error}") from None


async def tasks(state: DashboardState, params: Mapping[str, str]) -> dict[str, Any]:
    """One page of tasks matching the filters (latest first), or the one task ``id`` names."""
    task_id = params.get("id", "").strip()
    if task_id:
        events = await state.store.task_events(task_id)
        found = [TaskSummary.of(events)] if events else []
        return {"tasks": [_task(task) for task in found], "cursor": None}
    page = await state.store.tasks(task_query(params))
    return {"tasks": [_task(task) for task in page.tasks], "cursor": page.cursor}


async def task_detail(state: DashboardState, task_id: str) -> dict[str, Any] | None:
    """A task's events, state, retries, result or error and progress; None when unknown."""
    events = await state.store.task_events(task_id)
    if not events:
        return None
    summary = TaskSummary.of(events)
    sent = sent_message(state.broker, events)
    writable = not state.settings.read_only
    return {
        "task": _task(summary),
        "message": _message(sent.message),
        "message_note": sent.note,
        "events": [_event(event) for event in events],
        "retries": sum(event.kind is EventKind.RETRIED for event in events),
        "retried_as": [event.new_task_id for event in events if event.new_task_id],
        "result": await _result(state, task_id, _latest_traceback(events)),
        "progress": await _progress(state, task_id),
        "can_cancel": features(state)["cancel"]
        and summary.state in (EventKind.SENT, EventKind.RECEIVED, EventKind.STARTED),
        "can_retry": writable and summary.state is EventKind.FAILED and sent.message is not None,
    }


def _message(message: TaskiqMessage | None) -> dict[str, Any] | None:
    """The arguments and labels of a sent message, as JSON-ready data."""
    if message is None:
        return None
    return {
        "task_name": message.task_name,
        "args": plain(message.args),
        "kwargs": plain(message.kwargs),
        "labels": plain(message.labels),
    }


def _event(event: TaskEvent) -> dict[str, Any]:
    """An event as the timeline shows it: its message is the detail's ``message``."""
    data = event.as_dict()
    data.pop("message", None)
    data.pop("traceback", None)
    return data


def _latest_traceback(events: list[TaskEvent]) -> str | None:
    """The traceback the latest event with one carries (a worker records it with the error)."""
    return next((event.traceback for event in reversed(events) if event.traceback), None)


async def workers(state: DashboardState) -> dict[str, Any]:
    """Each worker's latest heartbeat, whether it is stale, and the tasks it runs now."""
    now = time.time()
    found = await state.store.workers(state.settings.stale_after, now=now)
    rows = []
    for status in found:
        running = await state.store.tasks(
            TaskQuery(state=EventKind.STARTED, worker=status.heartbeat.worker, limit=RUNNING_SHOWN)
        )
        age = now - status.last_seen  # negative (dated ahead) only when its clock runs ahead
        rows.append(
            {
                **status.heartbeat.as_dict(),
                "alive": status.alive,
                "clock_ahead": status.clock_ahead,
                "age": age if status.clock_ahead else max(age, 0.0),
                "running_tasks": [_task(task) for task in running.tasks],
            }
        )
    return {"time": now, "stale_after": state.settings.stale_after, "workers": rows}


def _task(task: TaskSummary) -> dict[str, Any]:
    data = dataclasses.asdict(task)
    data["state"] = task.state.value
    data["worker"] = str(task.worker)
    return data


async def _result(
    state: DashboardState, task_id: str, recorded_traceback: str | None
) -> dict[str, Any] | None:
    """The stored result of a task; its traceback, when the result has none, as recorded."""
    backend = state.broker.result_backend
    if isinstance(backend, DummyResultBackend):  # it keeps nothing: its "result" is made up
        return None
    try:
        if not await backend.is_result_ready(task_id):
            return None
        result = await backend.get_result(task_id, with_logs=True)
    except (TaskiqError, NotImplementedError):
        return None
    error = result.error
    return {
        "is_err": result.is_err,
        "return_value": None if result.is_err else plain(result.return_value),
        "execution_time": result.execution_time,
        "labels": plain(result.labels),
        "error": None if error is None else encode_error(error),
        "traceback": _traceback(error, recorded_traceback, result.log),
    }


async def _progress(state: DashboardState, task_id: str) -> dict[str, Any] | None:
    try:
        progress = await state.broker.result_backend.get_progress(task_id)
    except (TaskiqError, NotImplementedError):
        return None
    return None if progress is None else plain(progress.to_dict())


def _traceback(error: BaseException | None, recorded: str | None, log: str | None) -> str | None:
    if error is not None and error.__traceback__ is not None:
        return "".join(traceback.format_exception(type(error), error, error.__traceback__))
    if error is not None and recorded is not None:
        return recorded
    return log


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: what JSON cannot hold (NaN, infinities) becomes its repr."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return repr(value)
