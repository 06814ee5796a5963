"""The receiver's limit step: a run starts only when its task's rate and concurrency limits allow.

A run over its limit waits without being dropped. On a broker that declares ``delay`` it
goes back to the queue under the same task id, with a ``delay`` label for when it may start,
and its message is acknowledged: it holds no worker slot while it waits. It is due
`LOCAL_WAIT_S` early (plus a random spread of up to `DEFER_SPREAD_S`), since brokers move
delayed messages at intervals, and waits out the rest here: a place that frees is taken when
it frees, not one interval later, which over a backlog would lower the rate by that much
each window. A wait no longer than `LOCAL_WAIT_S` happens here too, as does every wait on
brokers without ``delay``.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taskq.capabilities import Capability
from taskq.control.stores import limiter_of
from taskq.control.unique import keep_unique_key
from taskq.task_events import stored_task_id

if TYPE_CHECKING:
    from taskq.abc.limiter import TaskLimiter
    from taskq.acks import AckController
    from taskq.broker import AsyncBroker
    from taskq.control.limits import TaskLimits
    from taskq.message import TaskiqMessage

logger = logging.getLogger("taskq.receiver")

#: Most seconds added at random to the delay of a run sent back to wait for its limits.
DEFER_SPREAD_S = 0.05
#: Seconds of waiting a run does in the worker: a shorter wait is not sent back to the queue,
#: and a run sent back is due this much early (more than a broker's delay granularity).
LOCAL_WAIT_S = 0.25


@dataclass
class Admission:
    """A run's admission under its limits: the concurrency place it holds, if any."""

    limiter: TaskLimiter
    key: str
    token: str
    holds_place: bool

    async def release(self) -> None:
        """Give back the concurrency place; a failure is logged (a lease frees the place)."""
        if not self.holds_place:
            return
        try:
            await self.limiter.release(self.key, self.token)
        except Exception:
            logger.exception(
                "Task %s: its concurrency place could not be given back; it frees itself "
                "when its lease ends",
                self.token,
            )


async def admit(
    broker: AsyncBroker, limits: TaskLimits, message: TaskiqMessage, acker: AckController
) -> Admission | None:
    """Wait for ``message``'s run to be allowed; None when it was sent back to wait instead.

    Raises:
        TaskArgumentsError: the task's ``limit_key`` failed for these arguments.
        SharedStoreRequiredError: the broker runs in several processes and has no limiter.
    """
    key = limits.key(message.task_name, message.args, message.kwargs)
    limiter = limiter_of(broker)
    can_delay = Capability.DELAY in broker.capabilities
    while True:
        wait_s = await limiter.acquire(key, message.task_id, limits.rate, limits.max_concurrency)
        if wait_s <= 0:
            return Admission(limiter, key, message.task_id, limits.max_concurrency is not None)
        if can_delay and wait_s > LOCAL_WAIT_S and await _send_back(broker, message, wait_s, acker):
            return None
        await limiter.wait(key, min(wait_s, LOCAL_WAIT_S) if can_delay else wait_s)


async def _send_back(
    broker: AsyncBroker, message: TaskiqMessage, wait_s: float, acker: AckController
) -> bool:
    """Queue ``message`` again, due `LOCAL_WAIT_S` before ``wait_s``, and acknowledge it.

    Returns False (the message is neither sent nor acknowledged) if it could not be sent.
    """
    delay = wait_s - LOCAL_WAIT_S + random.uniform(0, DEFER_SPREAD_S)
    message.labels["delay"] = math.ceil(delay * 1000) / 1000
    try:
        await broker.kick(broker.formatter.dumps(message))
    except Exception:
        logger.exception(
            "Task %s: could not queue it again to wait; it waits here",
            stored_task_id(message.task_id),
        )
        return False
    keep_unique_key(message)  # the run sent back carries the key on
    await acker.ack()
    return True
