"""Acknowledgement: when a worker tells the broker a message is done, and the ackable message."""

from __future__ import annotations

import asyncio
import enum
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskq.message import TaskiqMessage


class AcknowledgeType(str, enum.Enum):
    """When the worker acknowledges a message.

    ``WHEN_RECEIVED``: as soon as it is decoded (at most once). ``WHEN_EXECUTED``: after the
    task ran, before its result is stored. ``WHEN_SAVED`` (the default): after the result is
    stored, so a crash before that leaves the message to be redelivered. ``MANUAL``: the task
    acknowledges itself through ``Context.ack()``.
    """

    WHEN_RECEIVED = "when_received"
    WHEN_EXECUTED = "when_executed"
    WHEN_SAVED = "when_saved"
    MANUAL = "manual"


AckCallback = Callable[[], "Awaitable[None] | None"]
#: A ``reject`` may also take the reason as its one argument (``reject(reason)``).
RejectCallback = Callable[..., "Awaitable[None] | None"]


@dataclass(slots=True)
class AckableMessage:
    """A received message that the broker wants acknowledged (and, optionally, rejectable).

    ``ack``, ``reject`` and ``release`` may be sync or async and take no arguments, except
    that ``reject`` may take an optional ``reason`` (text saying why, which a broker keeping
    dead letters stores with the message); the receiver passes it only to a ``reject`` that
    accepts it, so rejects without the parameter keep working.
    ``release`` hands the message back unsettled, for redelivery to any worker, keeping its
    delivery count: the receiver calls it when processing ended without an ack or a reject
    (the result could not be stored, say), so the message does not stay held forever.
    """

    data: bytes | str
    ack: AckCallback
    reject: RejectCallback | None = None
    release: AckCallback | None = None


class AckController:
    """Settles one received message exactly once: ack, or reject where the broker can."""

    __slots__ = ("_ack", "_along", "_reject", "_release", "is_ackable", "is_acked")

    def __init__(self, message: AckableMessage | bytes | str | TaskiqMessage) -> None:
        """Control the acknowledgement of ``message`` (plain bytes, a decoded message need none)."""
        if isinstance(message, AckableMessage):
            self._ack: AckCallback | None = message.ack
            self._reject: RejectCallback | None = message.reject
            self._release: AckCallback | None = message.release
            #: Whether the broker wants this message acknowledged.
            self.is_ackable = message.ack is not None
        else:
            self._ack = self._reject = self._release = None
            self.is_ackable = False
        self.is_acked = False
        self._along: Callable[[], Awaitable[None]] | None = None

    def settle_along(self, along: Callable[[], Awaitable[None]] | None) -> None:
        """Run ``along()`` together with the broker's ack or reject, when one is sent.

        The two go out at once, so a broker that batches its round trips can carry both in
        one (the worker frees a unique task's key this way). None: run nothing along.
        """
        self._along = along

    async def ack(self) -> None:
        """Acknowledge the message, once; later calls do nothing."""
        if self.is_acked or self._ack is None:
            self.is_acked = True
            return
        self.is_acked = True
        await self._settled(self._ack())

    async def reject(self, reason: str | None = None) -> None:
        """Reject the message (or acknowledge it when the broker cannot reject), once.

        ``reason`` goes to a broker ``reject`` that takes one (see `AckableMessage`).
        """
        if self._reject is None:
            await self.ack()
            return
        if self.is_acked:
            return
        self.is_acked = True
        reject = self._reject
        await self._settled(
            reject(reason) if reason is not None and takes_reason(reject) else reject()
        )

    async def _settled(self, outcome: Awaitable[None] | None) -> None:
        along, self._along = self._along, None
        if along is None:
            if outcome is not None:
                await outcome
        elif outcome is None:
            await along()
        else:
            await asyncio.gather(outcome, along())

    async def release(self) -> None:
        """Hand the unsettled message back for redelivery, once (nothing if it is settled).

        A broker without ``release`` keeps the message as it is.
        """
        if self.is_acked:
            return
        self.is_acked = True
        if self._release is None:
            return
        outcome = self._release()
        if outcome is not None:
            await outcome


def takes_reason(reject: RejectCallback) -> bool:
    """Whether a broker's ``reject`` callback accepts a reason as its one argument."""
    try:
        signature = inspect.signature(reject)
    except (TypeError, ValueError):  # a callable without a signature: call it as before
        return False
    try:
        signature.bind("reason")
    except TypeError:
        return False
    return True
