"""Coalescing writes: one round trip in flight, and what arrives meanwhile goes in the next one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from taskq.toolkit import running_loop

_Item = TypeVar("_Item")


class BatchSender(Generic[_Item]):
    """Sends items through ``send(items)`` with at most one call in flight.

    An item submitted while nothing is in flight is sent at the next turn of the event loop,
    with the items submitted during the same turn (an acknowledgement and the unique key freed
    with it, say); items submitted during a send wait and then go together in the next call.
    Under load a batch holds what arrived during one round trip, so the number of round trips
    adapts to the load, and an idle sender adds one turn of the loop. `submit` returns once
    its item's call succeeded and raises what that call raised.

    A sender made with ``wait_for_turn=False`` sends an item submitted while nothing is in
    flight at once, alone: for items whose submitters seldom come together in one turn (a
    client's kicks, one after another), that turn of the loop would cost each item more than
    it saves; items submitted during a send still go together in the next call.
    """

    def __init__(
        self, send: Callable[[list[_Item]], Awaitable[None]], *, wait_for_turn: bool = True
    ) -> None:
        """Send with ``send``, which takes a non-empty list of items."""
        self._send = send
        self._wait_for_turn = wait_for_turn
        self._busy = False
        self._waiting: list[_Item] = []
        # one future per waiting submitter, not one shared behind asyncio.shield: a cancelled
        # submitter cancels only its own, and the end of a batch wakes each with one callback
        self._waiters: list[asyncio.Future[None]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the waiters were made in

    async def submit(self, item: _Item) -> None:
        """Send ``item`` (alone now, or with others after the call in flight)."""
        if not self._busy:
            self._busy = True
            try:
                if self._wait_for_turn:
                    await asyncio.sleep(0)  # what is submitted during this turn goes along
                    await self._send_with_joined(item)
                else:  # nothing can have joined: nothing ran since the sender was idle
                    await self._send([item])
            finally:
                self._send_waiting()
            return
        # no system call per item before Python 3.12 (an acknowledgement per message waits here)
        self._loop = loop = running_loop(self._loop)
        waiter = loop.create_future()
        self._waiting.append(item)
        self._waiters.append(waiter)
        await waiter  # cancelled, the submitter leaves its item in the batch

    async def _send_with_joined(self, item: _Item) -> None:
        joined, waiters = self._take_waiting()
        await _send_for(self._send, [item, *joined], waiters)

    def _take_waiting(self) -> tuple[list[_Item], list[asyncio.Future[None]]]:
        taken = self._waiting, self._waiters
        self._waiting, self._waiters = [], []
        return taken

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
        self._flushing = asyncio.ensure_future(self._flush(*self._take_waiting()))

    async def _flush(self, items: list[_Item], waiters: list[asyncio.Future[None]]) -> None:
        try:
            with contextlib.suppress(Exception):  # each waiter got the error
                await _send_for(self._send, items, waiters)
        finally:
            self._send_waiting()


async def _send_for(
    send: Callable[[list[_Item]], Awaitable[None]],
    items: list[_Item],
    waiters: list[asyncio.Future[None]],
) -> None:
    """``send(items)``, then settle ``waiters`` as it went (those still waiting)."""
    try:
        await send(items)
    except asyncio.CancelledError:
        for waiter in waiters:
            waiter.cancel()
        raise
    except Exception as exc:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)
        raise
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
