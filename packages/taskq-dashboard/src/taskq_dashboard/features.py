"""What the broker offers beyond sending: inspection and cancellation.

The dashboard shows a page or an action only when the broker declares it. Cancellation is
found by its public contract (``broker.cancel`` with a cancellation store), dead letters by
`taskq.abc.dead_letters.dead_letters_of`, never through a broker's private keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq.capabilities import Capability

if TYPE_CHECKING:
    from taskq.broker import AsyncBroker


def can_inspect(broker: object) -> bool:
    """Whether the broker declares ``inspect`` (queue depths by state)."""
    return Capability.INSPECT in getattr(broker, "capabilities", frozenset())


def can_cancel(broker: AsyncBroker) -> bool:
    """Whether ``broker.cancel(task_id)`` reaches the workers (a cancellation store is set)."""
    return broker.target_broker().cancellation is not None
