"""Starting a message's coroutine at once, and making it an asyncio task only if it must wait."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine, Generator
from typing import Any


def start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` until it first waits; None if it finished, else a task that finishes it.

    Most messages (a short async task whose result is stored in memory) never wait, so they
    cost neither a task nor a trip through the event loop. The coroutine runs in its own copy
    of the context, as a task's does; exceptions escape as they would from ``await coro``.
    """
    context = contextvars.copy_context()
    try:
        first_wait = context.run(coro.send, None)
    except StopIteration:
        return None
    resume = _resume(coro, first_wait)
    if sys.version_info >= (3, 11):
        return asyncio.get_running_loop().create_task(resume, context=context)
    return asyncio.get_running_loop().create_task(resume)  # pragma: no cover - 3.10


async def _resume(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    """Drive ``coro`` on from where `start_eagerly` left it, as an asyncio task would."""
    while True:
        try:
            sent = await _WaitOn(waiting_on)
        except BaseException as exc:  # cancellation too: the coroutine decides
            try:
                waiting_on = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration:
                return


class _WaitOn:
    """Hands what a coroutine yielded (a future, or None for "later") to the running task."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.value)
