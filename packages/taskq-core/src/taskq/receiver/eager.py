"""Starting a message's coroutine as an asyncio task, at once where Python can (3.12+)."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine
from typing import Any

from taskq.receiver.interrupts import MessageTask


def start_task(
    coro: Coroutine[Any, Any, None],
    loop: asyncio.AbstractEventLoop,
    context: contextvars.Context | None = None,
    *,
    eager: bool = True,
) -> asyncio.Task[None] | None:
    """Start ``coro`` as a task of ``loop``, the running loop; None if it already finished.

    The task runs in ``context`` (one no other task runs in), else in a copy of the current
    context, as ``create_task`` runs it.

    With ``eager``, on Python 3.12 and later, the task starts at once: it runs inside this
    call until it first waits, so a message that never waits (a short async task whose
    result is stored in memory) costs no trip through the event loop. Otherwise, and on
    earlier Pythons, it is scheduled to start at the loop's next turn. A task factory set on
    the loop is honoured (the task is then made by the factory). On Python 3.10 the task is
    a `MessageTask`, which can tell that it was cancelled.
    """
    if loop.get_task_factory() is not None:
        return loop.create_task(coro) if context is None else context.run(loop.create_task, coro)
    if eager and sys.version_info >= (3, 12):
        task: asyncio.Task[None] = asyncio.Task(coro, loop=loop, eager_start=True, context=context)
        return None if task.done() else task
    # scheduled, not started; what create_task does, minus its checks (the task copies the
    # context it is made in: ``context``, which no task runs in, if given)
    if context is None:
        return MessageTask(coro, loop=loop)
    return context.run(MessageTask, coro, loop=loop)
