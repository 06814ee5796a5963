"""Coalescing writes: one round trip in flight, and what arrives meanwhile goes in the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

_Item = TypeVar("_Item")


class BatchSender(Generic[_Item]):
    """Sends items through ``send(items)`` with at most one call in flight.

    An item submitted while nothing is in flight is sent at the next turn of the event loop,
    with the items submitted during the same turn (an acknowledgement and the unique key freed
    with it, say); items submitted during a send wait and then go together in the next call.
    Under load a batch holds what arrived during one round trip, so the number of round trips
    adapts to the load, and an idle sender adds one turn of the loop. `submit` returns once
    its item's call succeeded and raises what that call raised.
    """

    def __init__(self, send: Callable[[list[_Item]], Awaitable[None]]) -> None:
        """Send with ``send``, which takes a non-empty list of items."""
        self._send = send
        self._busy = False
        self._waiting: list[_Item] = []
        self._waiting_sent: asyncio.Future[None] | None = None
        self._flushing: asyncio.Task[None] | None = None

    async def submit(self, item: _Item) -> None:
        """Send ``item`` (alone now, or with others after the call in flight)."""
        if not self._busy:
            self._busy = True
            try:
                await asyncio.sleep(0)  # what is submitted during this turn goes along
                await self._send_with_joined(item)
            finally:
                self._send_waiting()
            return
        sent = self._waiting_sent
        if sent is None:
            sent = self._waiting_sent = asyncio.get_running_loop().create_future()
            sent.add_done_callback(_retrieve)
        self._waiting.append(item)
        await asyncio.shield(sent)  # a cancelled submitter must not cancel the others' send

    async def _send_with_joined(self, item: _Item) -> None:
        joined, sent = self._waiting, self._waiting_sent
        self._waiting, self._waiting_sent = [], None
        if sent is None:
            await self._send([item])
            return
        try:
            await self._send([item, *joined])
        except asyncio.CancelledError:
            sent.cancel()
            raise
        except Exception as exc:
            sent.set_exception(exc)
            raise
        sent.set_result(None)

    async def drain(self) -> None:
        """Wait until nothing is in flight or waiting."""
        while self._busy:
            flushing = self._flushing
            if flushing is None:
                await asyncio.sleep(0.01)  # a submitter's own send is in flight
            else:
                await asyncio.wait((flushing,))

    def _send_waiting(self) -> None:
        if not self._waiting:
            self._busy = False
            self._flushing = None
            return
        items, sent = self._waiting, self._waiting_sent
        self._waiting, self._waiting_sent = [], None
        assert sent is not None
        self._flushing = asyncio.ensure_future(self._flush(items, sent))

    async def _flush(self, items: list[_Item], sent: asyncio.Future[None]) -> None:
        try:
            await self._send(items)
        except asyncio.CancelledError:
            sent.cancel()
            raise
        except Exception as exc:
            if not sent.done():
                sent.set_exception(exc)
        else:
            if not sent.done():
                sent.set_result(None)
        finally:
            self._send_waiting()


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark the exception of a batch as seen even if every submitter went away."""
    if not future.cancelled():
        future.exception()
