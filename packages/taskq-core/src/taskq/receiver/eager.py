"""Starting a message's coroutine at once where Python can (3.12+), as an asyncio task."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine
from typing import Any

from taskq.receiver.interrupts import MessageTask


def start_eagerly(
    coro: Coroutine[Any, Any, None],
    loop: asyncio.AbstractEventLoop,
    context: contextvars.Context | None = None,
) -> asyncio.Task[None] | None:
    """Start ``coro`` as a task of ``loop``, the running loop; None if it already finished.

    The task runs in ``context`` (one no other task runs in), else in a copy of the current
    context, as ``create_task`` runs it.

    On Python 3.12 and later the task starts eagerly: it runs at once, inside this call, until
    it first waits, so a message that never waits (a short async task whose result is stored
    in memory) costs no trip through the event loop. Earlier Pythons schedule it as usual.
    A task factory set on the loop is honoured (the task is then made by the factory). On
    Python 3.10 the task is a `MessageTask`, which can tell that it was cancelled.
    """
    eager = sys.version_info >= (3, 12) and loop.get_task_factory() is None
    if context is not None and not eager:
        # a task copies the context it is made in; ``context`` is one no task runs in, so
        # entering it here cannot clash (with a task it started here that enters another)
        return context.run(start_eagerly, coro, loop)
    if loop.get_task_factory() is not None:
        return loop.create_task(coro)
    if sys.version_info >= (3, 12):
        task: asyncio.Task[None] = asyncio.Task(coro, loop=loop, eager_start=True, context=context)
    else:  # pragma: no cover - exercised on 3.10 and 3.11
        task = MessageTask(coro, loop=loop)  # what create_task does, minus its checks
    return None if task.done() else task
