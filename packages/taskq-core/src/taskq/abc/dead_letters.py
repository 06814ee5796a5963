"""The dead-letter contract: list, show, replay and purge what a broker took out of circulation.

A broker that keeps dead letters (rejected messages, messages delivered too often) exposes them
as ``broker.dead_letters``, a `DeadLetterQueue`; ``taskq dlq`` works with every such broker.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter: its id, the message bytes, why and when it left the queue.

    ``deliveries`` is how often it was delivered, where the broker counts it (else None).
    A broker adds what else it knows through `details`.
    """

    id: str
    payload: bytes | None
    reason: str
    dead_at: datetime | None
    deliveries: int | None

    def details(self) -> dict[str, str]:
        """What else the broker knows about the dead letter, by name (``taskq dlq show``)."""
        return {}


class DeadLetterQueue(abc.ABC):
    """The dead letters of one queue of a broker, oldest first.

    Replaying sends a dead letter to its queue again (and removes it from the dead letters),
    at most once even for concurrent callers; purging deletes it for good.
    """

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """Where the dead letters are kept, for people (a key, a queue name)."""

    @abc.abstractmethod
    async def count(self) -> int:
        """How many dead letters there are."""

    @abc.abstractmethod
    async def list(self, count: int = 100, after: str | None = None) -> list[DeadLetter]:
        """Up to ``count`` dead letters, oldest first, starting after the id ``after``."""

    @abc.abstractmethod
    async def show(self, dead_letter_id: str) -> DeadLetter | None:
        """The dead letter ``dead_letter_id``, or None when there is none."""

    @abc.abstractmethod
    async def replay(self, dead_letter_ids: Iterable[str] | None = None) -> int:
        """Send these dead letters (None: all there are now) to their queue again; how many."""

    @abc.abstractmethod
    async def purge(self, dead_letter_ids: Iterable[str] | None = None) -> int:
        """Delete these dead letters (None: all) for good; return how many."""


def dead_letters_of(broker: object) -> DeadLetterQueue | None:
    """``broker.dead_letters`` when the broker keeps dead letters, else None."""
    queue = getattr(broker, "dead_letters", None)
    return queue if isinstance(queue, DeadLetterQueue) else None
