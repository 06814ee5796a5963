"""Running messages one after another in one asyncio task while none of them waits.

An asyncio task costs about as much as running a short message (3 to 5 µs on Python 3.10
and 3.11). When the consume loop takes several messages at once, `run_in_turn` runs them in
one task, each in a copy of the task's context, as a task of its own would start, until one
waits: that one keeps the task to itself, and the messages after it start in tasks of their
own, as they would have without it. So a message that waits is alone in its task
(``asyncio.current_task()``, ``asyncio.timeout`` and a cancellation reach it alone), and
messages that never wait cost no task each.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine, Generator, Sequence
from typing import Any, TypeVar

from taskq.receiver.interrupts import asked_to_stop

_Message = TypeVar("_Message")

#: Messages taken one task each, at most, after a batch whose first message waited.
MAX_MESSAGES_APART = 4096


class InTurnBackoff:
    """Whether the messages taken together next should run in turn.

    Not for a while after a batch whose first message waited (sync tasks, tasks doing I/O):
    the messages after it start a trip through the event loop later than tasks of their
    own would. The while, counted in messages taken, doubles each time that happens again,
    up to `MAX_MESSAGES_APART`, and ends once a batch runs a message in turn.
    """

    __slots__ = ("_apart", "_next_apart")

    def __init__(self) -> None:
        """Start by running messages in turn."""
        self._apart = 0
        self._next_apart = 1

    def in_turn(self) -> bool:
        """Whether the messages taken now should run in turn; counts those that should not."""
        if self._apart:
            self._apart -= 1
            return False
        return True

    def first_waited(self) -> None:
        """The first message of a batch waited: take the next ones apart for a while."""
        self._apart = self._next_apart
        self._next_apart = min(2 * self._next_apart, MAX_MESSAGES_APART)

    def ran_in_turn(self) -> None:
        """A message of a batch ended without waiting."""
        self._next_apart = 1


async def run_in_turn(
    messages: Sequence[_Message],
    process: Callable[[_Message], Coroutine[Any, Any, None]],
    spawn: Callable[[Sequence[_Message]], None],
    backoff: InTurnBackoff,
) -> None:
    """Run ``process(message)`` for each of ``messages`` in turn, in this task.

    When one waits, or cancels this task and returns, ``spawn`` gets the messages after it
    (if any), to start each in a task of its own. ``backoff`` learns whether the first one
    waited.
    """
    task = asyncio.current_task()
    for position, message in enumerate(messages):
        coro = process(message)
        context = contextvars.copy_context()
        try:
            waiting_for = context.run(coro.send, None)
        except StopIteration:
            if position == 0:
                backoff.ran_in_turn()
            if not asked_to_stop(task):
                continue
            # the message cancelled this task (``current_task().cancel()``): it ends here
            _spawn_rest(messages, position, spawn)
            return
        except BaseException:
            _spawn_rest(messages, position, spawn)
            raise
        if position == 0:
            backoff.first_waited()
        _spawn_rest(messages, position, spawn)
        await _Started(coro, context, waiting_for)
        return


def _spawn_rest(
    messages: Sequence[_Message], position: int, spawn: Callable[[Sequence[_Message]], None]
) -> None:
    if position + 1 < len(messages):
        spawn(messages[position + 1 :])


class _Started:
    """Awaits ``coro`` from where it stopped (``waiting_for``), each step in ``context``.

    What a task does with its coroutine, for a coroutine it did not start: what the task
    sends or throws in (a cancellation) goes to ``coro``.
    """

    __slots__ = ("context", "coro", "waiting_for")

    def __init__(
        self, coro: Coroutine[Any, Any, None], context: contextvars.Context, waiting_for: Any
    ) -> None:
        self.coro = coro
        self.context = context
        self.waiting_for = waiting_for

    def __await__(self) -> Generator[Any, Any, None]:
        coro, run, waiting_for = self.coro, self.context.run, self.waiting_for
        while True:
            try:
                sent = yield waiting_for
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                step: Callable[[Any], Any] = coro.throw
                sent = exc
            else:
                step = coro.send
            try:
                waiting_for = run(step, sent)
            except StopIteration:
                return
