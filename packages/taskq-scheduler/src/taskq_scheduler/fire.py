"""`Fire`: one fire of one schedule, and the idempotency key, task id and labels it is sent with.

Every fire carries its idempotency key, ``<schedule_id>@<fire time, ISO 8601 UTC>``, in the
``idempotency_key`` label, next to ``schedule_id`` and ``fire_time``. Unless the schedule
names a task id, the task id is derived from that key (a UUID 5), so a fire sent twice
would show up as the same task id twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from taskq.abc.schedule_source import ScheduleSource
from taskq.scheduled_task import ScheduledTask
from taskq.task_events import MAX_QUOTED_CHARS, shortened

#: The namespace of the task ids derived from idempotency keys.
TASK_ID_NAMESPACE = uuid.UUID("6f1d3c1e-5b7a-4d0e-9a51-0c8f2a7be6d4")
SCHEDULE_ID_LABEL = "schedule_id"
FIRE_TIME_LABEL = "fire_time"
IDEMPOTENCY_KEY_LABEL = "idempotency_key"


@dataclass(frozen=True)
class Fire:
    """Schedule ``schedule`` of ``source`` falling due at ``time`` (POSIX seconds)."""

    source: ScheduleSource
    schedule: ScheduledTask
    time: float

    @property
    def instant(self) -> datetime:
        """The fire time as an aware UTC datetime, to the millisecond."""
        return datetime.fromtimestamp(round(self.time * 1000) / 1000, timezone.utc)

    @property
    def idempotency_key(self) -> str:
        """``<schedule_id>@<fire time>``: the same for every scheduler computing this fire."""
        return f"{self.schedule.schedule_id}@{self.instant.isoformat(timespec='milliseconds')}"

    @property
    def name(self) -> str:
        """The idempotency key as log lines name the fire, shortened when it is long.

        A schedule id read from a store may be of any length.
        """
        return shortened(self.idempotency_key, MAX_QUOTED_CHARS)

    @property
    def task_id(self) -> str:
        """The schedule's own task id, or one derived from the idempotency key."""
        return self.schedule.task_id or uuid.uuid5(TASK_ID_NAMESPACE, self.idempotency_key).hex

    @property
    def labels(self) -> dict[str, Any]:
        """The schedule's labels, with the fire's schedule id, fire time and key."""
        return {
            **self.schedule.labels,
            SCHEDULE_ID_LABEL: self.schedule.schedule_id,
            FIRE_TIME_LABEL: self.instant.isoformat(timespec="milliseconds"),
            IDEMPOTENCY_KEY_LABEL: self.idempotency_key,
        }
