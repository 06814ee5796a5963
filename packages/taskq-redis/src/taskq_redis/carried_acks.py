"""Acknowledgements that ride along with a consumer's next read: one round trip for both."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

if TYPE_CHECKING:
    from redis.asyncio.connection import AbstractConnection

    from taskq_redis.batching import BatchSender
    from taskq_redis.unique import KeyRelease

#: An acknowledgement waiting to be sent: priority level, entry id, the acker's future.
PendingAck = tuple[int, bytes, "asyncio.Future[None]"]


class CarriedAcks:
    """The acknowledgements of one consumer, sent with its next read or else on their own.

    `ack` waits until Redis has the acknowledgement. A read about to start takes what waits
    (`take`) and writes each level's ``XACK`` and ``XDEL`` ahead of its ``XREADGROUP``, in one
    write; they are settled as their replies arrive, before the read's own reply (`settle`).
    What no read is about to take by the next turn of the event loop (a read waiting for
    messages holds the connection, or the worker is busy with its buffer) goes through
    ``sender``, the broker's acknowledgement batches, so that no acknowledgement waits for
    messages to arrive.
    """

    def __init__(self, sender: BatchSender[tuple[int, bytes] | KeyRelease]) -> None:
        """Send what no read takes through ``sender``."""
        self.sender = sender
        #: Whether a read will start soon and take what waits (set by the consumer).
        self.read_starting = False
        self._waiting: list[PendingAck] = []
        self._flush_scheduled = False
        self._forwarding: set[asyncio.Task[None]] = set()

    async def ack(self, level: int, entry_id: bytes) -> None:
        """Acknowledge and delete the entry; return once Redis has it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append((level, entry_id, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush_untaken)
        await future

    def take(self) -> list[PendingAck]:
        """What waits, for a read to send (the read is no longer about to start)."""
        self.read_starting = False
        taken, self._waiting = self._waiting, []
        return taken

    def forward_waiting(self) -> None:
        """Send what waits through the sender now (no read is going to take it)."""
        self.read_starting = False
        if self._waiting:
            self.forward(self.take())

    def forward(self, pending: list[PendingAck]) -> None:
        """Send ``pending`` (taken, not settled) through the sender, retried as it retries."""
        task = asyncio.ensure_future(self._send(pending))
        self._forwarding.add(task)
        task.add_done_callback(self._forwarding.discard)

    async def flush(self) -> None:
        """Send what waits and wait until everything forwarded is settled."""
        self.forward_waiting()
        if self._forwarding:
            await asyncio.gather(*self._forwarding, return_exceptions=True)

    def _flush_untaken(self) -> None:
        self._flush_scheduled = False
        if not self.read_starting:
            self.forward_waiting()

    async def _send(self, pending: list[PendingAck]) -> None:
        outcomes = await asyncio.gather(
            *(self.sender.submit((level, entry_id)) for level, entry_id, _ in pending),
            return_exceptions=True,
        )
        for (_, _, future), outcome in zip(pending, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(None)


def ack_commands(
    streams: Sequence[str], group: str, pending: list[PendingAck]
) -> tuple[list[tuple[Any, ...]], list[list[PendingAck]]]:
    """The ``XACK`` and ``XDEL`` of each level's ids, and the acks each pair settles."""
    by_level: dict[int, list[PendingAck]] = {}
    for item in pending:
        by_level.setdefault(item[0], []).append(item)
    commands: list[tuple[Any, ...]] = []
    for level, items in by_level.items():
        ids = [entry_id for _, entry_id, _ in items]
        commands.append(("XACK", streams[level], group, *ids))
        commands.append(("XDEL", streams[level], *ids))
    return commands, list(by_level.values())


async def settle(connection: AbstractConnection, acks: list[PendingAck]) -> None:
    """Read the replies of the ``XACK`` and ``XDEL`` of ``acks`` and settle each ack with them."""
    error: ResponseError | None = None
    for _ in range(2):
        try:
            await connection.read_response()
        except ResponseError as exc:  # the next reply is still read: the connection stays in step
            error = error or exc
    for _, _, future in acks:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
