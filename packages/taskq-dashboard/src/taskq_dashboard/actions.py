"""The dashboard's actions: cancel or retry a task, replay or purge dead letters, schedules.

Each action is logged and recorded as a task event in the event store (when it concerns a
task), so the task's timeline shows who did what: a cancellation as a ``cancelled`` event,
a retry as a ``retried`` event naming the new task, a replayed dead letter or a schedule run
now as a ``sent`` event, a purged dead letter as a ``rejected`` event.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskq.abc.dead_letters import dead_letters_of
from taskq.exceptions import TaskiqError
from taskq.message import TaskiqMessage
from taskq.scheduled_task import ScheduledTask
from taskq.task_events import EventKind, TaskEvent, WorkerId, quoted, stored_task_id
from taskq.toolkit import send_task
from taskq_dashboard.dead_letter_views import decoded_message
from taskq_dashboard.errors import DashboardError
from taskq_dashboard.features import can_cancel
from taskq_dashboard.schedule_views import is_dynamic
from taskq_dashboard.state import logger
from taskq_dashboard.task_messages import sent_message

if TYPE_CHECKING:
    from taskq.abc.schedule_source import ScheduleSource
    from taskq_dashboard.state import DashboardState

#: What the recorded events say an action came from.
ACTION_NOTE = "from the dashboard"


async def cancel_task(state: DashboardState, task_id: str) -> dict[str, Any]:
    """Cancel a queued or running task through the broker's cancellation."""
    _writable(state)
    if not can_cancel(state.broker):
        raise DashboardError(f"{type(state.broker).__name__} has no task cancellation")
    events = await state.store.task_events(task_id)
    name = events[-1].task_name if events else ""
    await state.broker.cancel(task_id, f"cancelled {ACTION_NOTE}")
    await _record(state, EventKind.CANCELLED, task_id, name, error_message=f"cancel {ACTION_NOTE}")
    logger.info("Task %s: cancel requested %s", stored_task_id(task_id), ACTION_NOTE)
    return {"cancelled": stored_task_id(task_id)}


async def retry_task(state: DashboardState, task_id: str) -> dict[str, Any]:
    """Send a failed task again as a new task: its name, arguments and labels, a new id.

    The message comes from the task's ``sent`` event; a ``retried`` event on the failed task
    names the new one.
    """
    _writable(state)
    events = await state.store.task_events(task_id)
    kept_id = stored_task_id(task_id)  # what an answer quotes: the request's id may be huge
    if not events:
        raise DashboardError(f"no task {kept_id!r} in the event store")
    if events[-1].kind is not EventKind.FAILED:
        raise DashboardError(
            f"task {kept_id} is {events[-1].kind.value}: only a failed task can be retried"
        )
    sent = sent_message(state.broker, events)
    if sent.message is None:
        raise DashboardError(f"task {kept_id} cannot be sent again (arguments {sent.note})")
    message = sent.message
    again = await send_task(
        state.broker, message.task_name, message.labels, tuple(message.args), message.kwargs
    )
    recorder = state.broker.event_recorder
    if recorder is not None and state.broker.event_store is state.store:
        await recorder.flush()  # the new task's sent event: its page exists at once
    else:  # the broker records elsewhere, or not at all: the dashboard's store gets it
        resent = TaskiqMessage(
            again.task_id, message.task_name, message.labels, message.args, message.kwargs
        )
        encoded = state.broker.formatter.dumps(resent).message
        await _record(
            state,
            EventKind.SENT,
            again.task_id,
            message.task_name,
            message=encoded,
            message_size=len(encoded),
        )
    await _record(
        state,
        EventKind.RETRIED,
        task_id,
        message.task_name,
        new_task_id=again.task_id,
        error_message=f"retry {ACTION_NOTE}",
    )
    logger.info(
        "Task %s retried %s as task %s", stored_task_id(task_id), ACTION_NOTE, again.task_id
    )
    return {"task_id": again.task_id}


async def replay_dead_letters(state: DashboardState, ids: list[str] | None) -> dict[str, Any]:
    """Send these dead letters (None: all) to their queue again."""
    queue = _dead_letters(state)
    messages = await _messages_of(state, ids)
    count = await queue.replay(ids)
    for message in messages:
        await _record(state, EventKind.SENT, message["task_id"], message["task_name"])
    logger.info("Replayed %d dead letter(s) %s", count, ACTION_NOTE)
    return {"replayed": count}


async def purge_dead_letters(state: DashboardState, ids: list[str] | None) -> dict[str, Any]:
    """Delete these dead letters (None: all) for good."""
    queue = _dead_letters(state)
    messages = await _messages_of(state, ids)
    count = await queue.purge(ids)
    for message in messages:
        await _record(
            state,
            EventKind.REJECTED,
            message["task_id"],
            message["task_name"],
            error_message=f"dead letter purged {ACTION_NOTE}",
        )
    logger.info("Purged %d dead letter(s) %s", count, ACTION_NOTE)
    return {"purged": count}


async def run_schedule_now(state: DashboardState, source: int, schedule_id: str) -> dict[str, Any]:
    """Send the task of a schedule now, with its arguments and labels (the schedule stays)."""
    _writable(state)
    schedule = await _schedule(_source(state, source), schedule_id)
    sent = await send_task(
        state.broker,
        schedule.task_name,
        dict(schedule.labels),
        tuple(schedule.args),
        dict(schedule.kwargs),
    )
    if state.broker.event_recorder is None or state.broker.event_store is not state.store:
        await _record(state, EventKind.SENT, sent.task_id, schedule.task_name)
    logger.info("Schedule %s run now %s: task %s", schedule_id, ACTION_NOTE, sent.task_id)
    return {"task_id": sent.task_id}


async def delete_schedule(state: DashboardState, source: int, schedule_id: str) -> dict[str, Any]:
    """Delete a schedule from a dynamic source."""
    found = _dynamic_source(state, source)
    await _schedule(found, schedule_id)
    await found.delete_schedule(schedule_id)
    logger.info("Schedule %s deleted %s", schedule_id, ACTION_NOTE)
    return {"deleted": schedule_id}


async def add_schedule(state: DashboardState, source: int, form: dict[str, Any]) -> dict[str, Any]:
    """Add a schedule for a task the broker knows to a dynamic source.

    ``form`` holds ``task_name``, ``kind`` (cron, interval or time), ``spec`` (the cron
    expression, seconds, or an ISO time with its offset), ``timezone`` (cron only) and
    ``args``/``kwargs`` as JSON text.
    """
    found = _dynamic_source(state, source)
    schedule = schedule_from_form(state, form)
    await found.add_schedule(schedule)
    logger.info("Schedule %s added %s", schedule.schedule_id, ACTION_NOTE)
    return {"schedule_id": schedule.schedule_id}


def schedule_from_form(state: DashboardState, form: dict[str, Any]) -> ScheduledTask:
    """The `ScheduledTask` a filled-in form describes; `DashboardError` says what is wrong."""
    name = str(form.get("task_name", ""))
    if state.broker.find_task(name) is None:
        raise DashboardError(f"the broker knows no task {quoted(name)}")
    kind, spec = str(form.get("kind", "")), str(form.get("spec", "")).strip()
    try:
        args = json.loads(str(form.get("args") or "[]"))
        kwargs = json.loads(str(form.get("kwargs") or "{}"))
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError("args must be a JSON list and kwargs a JSON object")
        timing: dict[str, Any]
        if kind == "cron":
            timing = {"cron": spec, "cron_offset": str(form.get("timezone") or "") or None}
        elif kind == "interval":
            timing = {"interval": float(spec)}
        elif kind == "time":
            timing = {"time": datetime.fromisoformat(spec)}
        else:
            raise ValueError(f"kind must be cron, interval or time, not {quoted(kind)}")
        return ScheduledTask(task_name=name, args=args, kwargs=kwargs, **timing)
    except (ValueError, TaskiqError) as error:
        raise DashboardError(f"bad schedule: {error}") from None


def _writable(state: DashboardState) -> None:
    if state.settings.read_only:
        raise DashboardError("the dashboard is read-only")


def _dead_letters(state: DashboardState) -> Any:
    _writable(state)
    queue = dead_letters_of(state.broker)
    if queue is None:
        raise DashboardError(f"{type(state.broker).__name__} keeps no dead letters")
    return queue


async def _messages_of(state: DashboardState, ids: list[str] | None) -> list[dict[str, Any]]:
    """The decoded messages of these dead letters (None: all), for the recorded events."""
    queue = _dead_letters(state)
    letters = (
        list(await queue.list(count=max(await queue.count(), 1)))
        if ids is None
        else [letter for letter in [await queue.show(one) for one in ids] if letter is not None]
    )
    messages = [decoded_message(state.broker, letter.payload) for letter in letters]
    return [message for message in messages if message is not None]


def _source(state: DashboardState, index: int) -> ScheduleSource:
    if state.scheduler is None:
        raise DashboardError("the dashboard was started without a scheduler")
    sources = state.scheduler.sources
    if not 0 <= index < len(sources):
        raise DashboardError(f"the scheduler has no source {index}")
    return sources[index]


def _dynamic_source(state: DashboardState, index: int) -> ScheduleSource:
    _writable(state)
    found = _source(state, index)
    if not is_dynamic(found):
        raise DashboardError(f"{type(found).__name__} cannot change schedules at run time")
    return found


async def _schedule(source: ScheduleSource, schedule_id: str) -> ScheduledTask:
    for schedule in await source.get_schedules():
        if schedule.schedule_id == schedule_id:
            return schedule
    raise DashboardError(f"no schedule {quoted(schedule_id)} in {type(source).__name__}")


async def _record(
    state: DashboardState, kind: EventKind, task_id: str, task_name: str, **details: Any
) -> None:
    event = TaskEvent(kind, task_id, task_name, WorkerId.current(), time.time(), **details)
    await state.store.write([event])
