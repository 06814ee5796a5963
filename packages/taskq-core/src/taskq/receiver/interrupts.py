"""Task code that raises SystemExit & co., told apart from the worker cancelling the task.

A task's ``sys.exit()``, a ``KeyboardInterrupt`` or ``CancelledError`` it raises itself would
end the message's asyncio task (or the whole event loop); they become a failed run instead.
Only a cancellation *requested* of the message's task (``task.cancel()``: the worker's
shutdown, ``asyncio.run`` ending) goes on up.

Python 3.11+ tells the two apart with ``Task.cancelling()``. Python 3.10 has no such count, so
the receiver runs each message in a `MessageTask`, which notes every ``cancel()`` asked of it;
in a task it did not make there, every ``CancelledError`` is taken for a requested
cancellation, as before.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from taskq.exceptions import TaskExitError

_ADVICE: tuple[tuple[type[BaseException], str], ...] = (
    (
        SystemExit,
        "sys.exit() does not stop a worker; return to end the task, or raise an Exception "
        "to fail it",
    ),
    (
        KeyboardInterrupt,
        "stop a worker with SIGINT or SIGTERM, not from a task; raise an Exception to fail it",
    ),
    (
        asyncio.CancelledError,
        "the task raised CancelledError itself (the worker did not cancel it); handle the "
        "cancellation of tasks it starts inside it, or raise an Exception to fail it",
    ),
)
_OTHER_ADVICE = (
    "a task fails by raising an Exception; other BaseExceptions are for stopping the interpreter"
)

if sys.version_info >= (3, 11):
    MessageTask = asyncio.Task

    def cancel_requested() -> bool:
        """Whether the running task was asked to stop, not merely raising CancelledError."""
        return asked_to_stop(asyncio.current_task())

    def asked_to_stop(task: asyncio.Task[Any] | None) -> bool:
        """Whether ``task`` was asked to stop (``cancel()``); True for no task."""
        return task is None or task.cancelling() > 0

else:  # pragma: no cover - Python 3.10, run by its own tox environment

    class MessageTask(asyncio.Task[None]):
        """A message's asyncio task that notes whether ``cancel()`` was asked of it."""

        cancel_was_requested = False

        def cancel(self, msg: Any = None) -> bool:
            """Cancel the task, noting that it was asked to."""
            self.cancel_was_requested = True
            return super().cancel(msg)

    def cancel_requested() -> bool:
        """Whether the running task was asked to stop, not merely raising CancelledError."""
        return asked_to_stop(asyncio.current_task())

    def asked_to_stop(task: asyncio.Task[Any] | None) -> bool:
        """Whether ``task`` was asked to stop (``cancel()``); True for a task not a MessageTask."""
        return bool(getattr(task, "cancel_was_requested", True))


def reraise_cancellation(error: BaseException) -> None:
    """Raise ``error`` again if it must end the running task: its cancellation, GeneratorExit.

    Call it where a BaseException was caught; anything else is left to the caller.
    """
    if isinstance(error, GeneratorExit) or (
        isinstance(error, asyncio.CancelledError) and cancel_requested()
    ):
        raise error


def task_failure(error: BaseException) -> Exception:
    """Return what a failed run carries for ``error``, raised by task or middleware code.

    An `Exception` is returned as it is; SystemExit, KeyboardInterrupt, a CancelledError the
    code raised itself and other BaseExceptions become a `TaskExitError`. The cancellation of
    the running task, and GeneratorExit, are raised again (`reraise_cancellation`).
    """
    if isinstance(error, Exception):
        return error
    reraise_cancellation(error)
    kind = type(error)
    advice = next((text for base, text in _ADVICE if isinstance(error, base)), _OTHER_ADVICE)
    failure = TaskExitError(
        exception=repr(error),
        exception_type=f"{kind.__module__}.{kind.__qualname__}",
        advice=advice,
    )
    failure.__cause__ = error
    return failure
