"""Cancellations that are never lost: stop a task for sure, await a call that can lose one.

Before Python 3.12, ``asyncio.wait_for`` swallows a cancellation that arrives as its inner
call completes, and client libraries (redis-py around every write) use it: the cancelled
task goes on as if nothing had happened.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Coroutine

_T = TypeVar("_T")


async def cancel_until_done(*tasks: asyncio.Task[Any]) -> None:
    """Cancel each task and wait for it to end, cancelling it again if it went on.

    A consume loop whose cancellation a client library swallowed goes on; a single
    ``cancel()`` followed by an ``await`` would wait for it forever.
    """
    for task in tasks:
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1)


async def await_keeping_cancellation(call: Coroutine[Any, Any, _T]) -> _T:
    """Await ``call`` in a task of its own, so that a cancellation of the caller is never lost.

    The caller's wait raises ``CancelledError`` as it should; the call is not cut short (a
    request cut off after it was sent takes effect unseen: a consumer registered that
    nobody knows to cancel) but finishes in the background, its outcome dropped.
    """
    task = asyncio.ensure_future(call)
    try:
        await asyncio.wait((task,))
    except asyncio.CancelledError:
        task.add_done_callback(_drop_outcome)
        raise
    return task.result()


def _drop_outcome(task: asyncio.Future[Any]) -> None:
    """Mark the error of an abandoned call as seen: nobody waits for it any more."""
    if not task.cancelled():
        task.exception()
