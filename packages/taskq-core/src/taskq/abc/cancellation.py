"""The cancellation store contract: a shared record of cancelled task ids, kept for a while.

`AsyncBroker.cancel` records a cancellation in the broker's store; workers check the record
before running a message and listen for new records to stop tasks already running. A store
reaches the processes that share it: in one process (`taskq.InMemoryCancellationStore`), on
one host (``taskq_result_backends.SQLiteCancellationStore``) or on many (``taskq_redis.
RedisCancellationStore``).
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from typing import ClassVar

from taskq.capabilities import Capability

#: Seconds a cancellation is kept by default: 31 days, the longest ``delay`` a message may ask
#: for (``taskq.labels.MAX_DELAY_S``, 30 days) and a day more, so that a cancelled task delayed
#: that long still never starts.
DEFAULT_CANCELLATION_TTL_S = 31 * 86_400.0


@dataclasses.dataclass(frozen=True)
class Cancellation:
    """A recorded cancellation: the task id and the reason the canceller gave (may be empty)."""

    task_id: str
    reason: str = ""


class CancellationStore(ABC):
    """Records cancelled task ids for ``ttl_s`` seconds and tells listeners about new ones.

    Subclasses implement `cancel`, `cancellation` and `listen`, and read ``ttl_s`` at each
    `cancel` (it may be changed after construction). A store whose records reach other
    processes declares ``Capability.CROSS_PROCESS``. The conformance suite checks a store:
    ``pytest --pyargs taskq_conformance --taskq-cancellation-store pkg.mod:factory``.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(self, ttl_s: float = DEFAULT_CANCELLATION_TTL_S) -> None:
        """Keep each cancellation ``ttl_s`` seconds (positive and finite)."""
        if not 0 < ttl_s < math.inf:
            raise ValueError(f"ttl_s must be positive finite seconds, got {ttl_s!r}")
        self.ttl_s = ttl_s

    async def startup(self) -> None:  # noqa: B027 - optional hook
        """Open connections; called by the broker's startup."""

    async def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Close connections; called by the broker's shutdown."""

    @abstractmethod
    async def cancel(self, task_id: str, reason: str = "") -> None:
        """Record that ``task_id`` is cancelled (for ``ttl_s`` seconds) and tell listeners."""

    @abstractmethod
    async def cancellation(self, task_id: str) -> Cancellation | None:
        """Return the unexpired cancellation of ``task_id``, or None when there is none."""

    @abstractmethod
    async def listen(self) -> AsyncGenerator[Cancellation, None]:
        """Start listening and return the cancellations recorded from now on, as they come.

        When this returns, every later `cancel` (from any process the store reaches) is
        yielded, within about half a second. The generator raises when the store becomes
        unreachable; the caller listens again later.
        """
