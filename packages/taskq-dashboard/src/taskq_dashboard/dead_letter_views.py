"""The Dead letters page's data: each dead letter with its reason and decoded payload."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskq.abc.dead_letters import DeadLetter, dead_letters_of
from taskq.exceptions import MessageDecodeError
from taskq_dashboard.views import plain

if TYPE_CHECKING:
    from taskq.broker import AsyncBroker
    from taskq_dashboard.state import DashboardState

#: Dead letters one page lists.
DEAD_LETTER_PAGE = 100


async def dead_letters(state: DashboardState, after: str | None = None) -> dict[str, Any]:
    """A page of dead letters (oldest first) and their count; ``available`` False without."""
    queue = dead_letters_of(state.broker)
    if queue is None:
        return {"available": False, "count": 0, "dead_letters": [], "after": None}
    found = list(await queue.list(DEAD_LETTER_PAGE, after))
    return {
        "available": True,
        "count": await queue.count(),
        "dead_letters": [dead_letter_data(state.broker, letter) for letter in found],
        "after": found[-1].id if len(found) == DEAD_LETTER_PAGE else None,
    }


def dead_letter_data(broker: AsyncBroker, letter: DeadLetter) -> dict[str, Any]:
    """One dead letter as JSON-ready data: the message decoded when the broker can read it."""
    return {
        "id": letter.id,
        "reason": letter.reason,
        "dead_at": None if letter.dead_at is None else letter.dead_at.timestamp(),
        "deliveries": letter.deliveries,
        "message": decoded_message(broker, letter.payload),
        "payload": None if letter.payload is None else letter.payload.decode(errors="replace"),
    }


def decoded_message(broker: AsyncBroker, payload: bytes | None) -> dict[str, Any] | None:
    """The task message in ``payload`` (id, name, labels, args, kwargs), None if unreadable."""
    if payload is None:
        return None
    try:
        message = broker.formatter.loads(payload)
    except MessageDecodeError:
        return None
    return {
        "task_id": message.task_id,
        "task_name": message.task_name,
        "labels": plain(message.labels),
        "args": plain(message.args),
        "kwargs": plain(message.kwargs),
    }
