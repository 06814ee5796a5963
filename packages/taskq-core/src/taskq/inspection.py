"""Queue inspection: what a broker declaring ``inspect`` reports about its queue."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ConsumerInfo:
    """A consumer the broker knows: its name and how many messages it holds unsettled.

    ``in_flight`` is None when the broker cannot tell per consumer.
    """

    name: str
    in_flight: int | None = None


@dataclass(frozen=True)
class QueueInspection:
    """Counts of a queue's messages by state, and the consumers reading it.

    ``ready``: waiting for a consumer. ``delayed``: waiting for their ``delay`` to pass.
    ``in_flight``: taken by a consumer and not settled yet (neither acknowledged nor
    rejected). ``dead``: taken out of circulation (the dead letters). ``consumers``: what
    the broker knows of its consumers, in no particular order.
    """

    queue: str
    ready: int = 0
    delayed: int = 0
    in_flight: int = 0
    dead: int = 0
    consumers: tuple[ConsumerInfo, ...] = field(default_factory=tuple)

    @property
    def total(self) -> int:
        """Every message the queue holds, whatever its state."""
        return self.ready + self.delayed + self.in_flight + self.dead
