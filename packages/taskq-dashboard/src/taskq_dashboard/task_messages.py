"""The message a task was sent with, read back from its ``sent`` event: to show and resend it.

`kiq` records the encoded message in the task's ``sent`` event when it is no larger than the
recorder's ``max_message_bytes``; the dashboard decodes it with the broker's formatter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taskq.exceptions import MessageDecodeError
from taskq.task_events import EventKind, TaskEvent

if TYPE_CHECKING:
    from taskq.broker import AsyncBroker
    from taskq.message import TaskiqMessage


@dataclass(frozen=True)
class SentMessage:
    """A task's first recorded message, or why there is none (``note``)."""

    message: TaskiqMessage | None
    note: str | None = None


def sent_message(broker: AsyncBroker, events: Sequence[TaskEvent]) -> SentMessage:
    """The message of the first ``sent`` event of ``events`` that kept one, decoded."""
    sent = [event for event in events if event.kind is EventKind.SENT]
    for event in sent:
        if event.message is not None:
            try:
                return SentMessage(broker.formatter.loads(event.message))
            except MessageDecodeError as error:
                return SentMessage(None, f"the recorded message cannot be decoded: {error}")
    sizes = [event.message_size for event in sent if event.message_size is not None]
    if sizes:
        return SentMessage(
            None,
            f"not recorded: the message was {sizes[0]:,} bytes, more than the sender's "
            "event recorder keeps (max_message_bytes)",
        )
    return SentMessage(None, "not recorded: no sent event of this task holds its message")
