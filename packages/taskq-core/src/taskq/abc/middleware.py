"""The middleware contract: hooks around sending, running and storing a task."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskq.broker import AsyncBroker
    from taskq.message import TaskiqMessage
    from taskq.result import TaskiqResult

_MaybeAwaitable = Any  # a value, or an awaitable of it: hooks may be sync or async


class TaskiqMiddleware:
    """Base class of middlewares; override the hooks you need, sync or async.

    Order: client side ``pre_send`` → kick → ``post_send``; worker side ``pre_execute`` →
    the task → ``post_execute`` (success or failure) and ``on_error`` (failure) → the result is
    stored → ``post_save``. ``startup``/``shutdown`` run with the broker's. Hooks that are not
    overridden cost nothing: the broker calls only the overridden ones.
    """

    def __init__(self) -> None:
        """Create the middleware; the broker is set when it is added."""
        self.broker: AsyncBroker = None  # type: ignore[assignment]

    def set_broker(self, broker: AsyncBroker) -> None:
        """Attach the middleware to ``broker`` (called by ``add_middlewares``)."""
        self.broker = broker

    def startup(self) -> _MaybeAwaitable:
        """Run when the broker starts."""

    def shutdown(self) -> _MaybeAwaitable:
        """Run when the broker shuts down."""

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage | Awaitable[TaskiqMessage]:
        """Change (or replace) a message before it is sent; return the message to send."""
        return message

    def post_send(self, message: TaskiqMessage) -> _MaybeAwaitable:
        """Run after a message was handed to the broker."""

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage | Awaitable[TaskiqMessage]:
        """Change a received message before its task runs; return the message to run."""
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> _MaybeAwaitable:
        """Run after the task ran, before its result is stored."""

    def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> _MaybeAwaitable:
        """Run when the task raised ``exception``, before its result is stored."""

    def post_save(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> _MaybeAwaitable:
        """Run after the result was stored."""


HOOKS = ("pre_send", "post_send", "pre_execute", "post_execute", "on_error", "post_save")


def hooks_by_name(middlewares: list[TaskiqMiddleware]) -> dict[str, list[Any]]:
    """Map each hook name to the bound methods of the middlewares that override it, in order."""
    return {name: _overridden(middlewares, name) for name in HOOKS}


def _overridden(middlewares: list[TaskiqMiddleware], hook: str) -> list[Any]:
    base = getattr(TaskiqMiddleware, hook)
    return [getattr(m, hook) for m in middlewares if getattr(type(m), hook, base) is not base]
