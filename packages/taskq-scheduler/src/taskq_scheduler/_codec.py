"""How a `ScheduledTask` is stored: a JSON object, with datetimes and timedeltas spelled out."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from taskq.exceptions import InvalidScheduleError
from taskq.scheduled_task import ScheduledTask


def encode_schedule(schedule: ScheduledTask) -> bytes:
    """Return the JSON bytes of ``schedule``; `InvalidScheduleError` if an argument is not JSON."""
    offset = schedule.cron_offset
    document: dict[str, Any] = {
        "task_name": schedule.task_name,
        "labels": schedule.labels,
        "args": schedule.args,
        "kwargs": schedule.kwargs,
        "task_id": schedule.task_id,
        "schedule_id": schedule.schedule_id,
        "cron": schedule.cron,
        "cron_offset": (
            {"seconds": offset.total_seconds()} if isinstance(offset, timedelta) else offset
        ),
        "time": None if schedule.time is None else schedule.time.isoformat(),
        "interval": None if schedule.interval is None else schedule.interval_seconds,
    }
    try:
        return json.dumps(document, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidScheduleError(
            reason=f"the schedule's args, kwargs and labels must be JSON values: {exc}"
        ) from None


def _whole(seconds: float | None) -> float | None:
    return int(seconds) if isinstance(seconds, float) and seconds.is_integer() else seconds


#: The type each stored field must have (None is allowed where the schedule allows it).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "task_name": (str,),
    "schedule_id": (str,),
    "labels": (dict,),
    "args": (list,),
    "kwargs": (dict,),
    "task_id": (str, type(None)),
    "cron": (str, type(None)),
    "cron_offset": (str, dict, type(None)),
    "time": (str, type(None)),
    "interval": (int, float, type(None)),
}


def decode_schedule(data: bytes) -> ScheduledTask:
    """Return the schedule ``data`` holds; ValueError (or KeyError/TypeError) if it holds none."""
    document = json.loads(data)
    _check_types(document)
    offset = document.get("cron_offset")
    when = document.get("time")
    interval = document.get("interval")
    return ScheduledTask(
        task_name=document["task_name"],
        labels=document["labels"],
        args=document["args"],
        kwargs=document["kwargs"],
        task_id=document.get("task_id"),
        schedule_id=document["schedule_id"],
        cron=document.get("cron"),
        cron_offset=timedelta(seconds=offset["seconds"]) if isinstance(offset, dict) else offset,
        time=None if when is None else datetime.fromisoformat(when),
        interval=_whole(interval),
    )


def _check_types(document: object) -> None:
    """Raise TypeError unless ``document`` is an object whose fields have the stored types."""
    if not isinstance(document, dict):
        raise TypeError(f"a schedule is a JSON object, not {type(document).__name__}")
    for name, types in _FIELD_TYPES.items():
        value = document.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise TypeError(f"field {name!r} of a schedule cannot be {value!r}")
