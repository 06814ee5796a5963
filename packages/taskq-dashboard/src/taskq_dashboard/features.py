"""What the broker offers beyond sending: inspection, cancellation and dead letters.

The dashboard shows a page or an action only when the broker declares it. Dead letters and
cancellation are found by their public contracts (``broker.dead_letters``, ``broker.cancel``
with a cancellation store), never through a broker's private keys. `DeadLetters` states the
dead-letter operations the dashboard uses (list, show, replay, purge, count).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from taskq.capabilities import Capability

if TYPE_CHECKING:
    from taskq.broker import AsyncBroker


class DeadLetterView(Protocol):
    """What the dashboard reads of one dead letter."""

    @property
    def id(self) -> str:
        """The dead letter's id in its queue."""

    @property
    def payload(self) -> bytes | None:
        """The message bytes."""

    @property
    def reason(self) -> str:
        """Why it left the queue."""

    @property
    def dead_at(self) -> datetime | None:
        """When it left the queue."""

    @property
    def deliveries(self) -> int | None:
        """How often it was delivered, where the broker counts it."""


@runtime_checkable
class DeadLetters(Protocol):
    """The dead-letter operations of a broker: count, list, show, replay and purge."""

    def count(self) -> Awaitable[int]:
        """How many dead letters there are."""

    def list(self, count: int = 100, after: str | None = None) -> Awaitable[Any]:
        """Up to ``count`` dead letters, oldest first, after the id ``after``."""

    def show(self, dead_letter_id: str) -> Awaitable[Any]:
        """One dead letter, or None."""

    def replay(self, dead_letter_ids: Iterable[str] | None = None) -> Awaitable[int]:
        """Send these dead letters (None: all) to their queue again; how many."""

    def purge(self, dead_letter_ids: Iterable[str] | None = None) -> Awaitable[int]:
        """Delete these dead letters (None: all); how many."""


def dead_letters_of(broker: object) -> DeadLetters | None:
    """``broker.dead_letters`` when the broker keeps dead letters, else None."""
    queue = getattr(broker, "dead_letters", None)
    return queue if isinstance(queue, DeadLetters) else None


def can_inspect(broker: object) -> bool:
    """Whether the broker declares ``inspect`` (queue depths by state)."""
    return Capability.INSPECT in getattr(broker, "capabilities", frozenset())


def can_cancel(broker: AsyncBroker) -> bool:
    """Whether ``broker.cancel(task_id)`` reaches the workers (a cancellation store is set)."""
    return broker.target_broker().cancellation is not None
