"""`async_shared_broker`: declare tasks in libraries without knowing the application's broker."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, TypeVar

from typing_extensions import ParamSpec

from taskq.acks import AckableMessage
from taskq.broker import AsyncBroker
from taskq.decor import AsyncTaskiqDecoratedTask
from taskq.exceptions import SharedBrokerListenError, SharedBrokerSendTaskError
from taskq.message import BrokerMessage
from taskq.shared_registry import shared_task_registry

_Params = ParamSpec("_Params")
_ReturnType = TypeVar("_ReturnType")


class AsyncSharedBroker(AsyncBroker):
    """A placeholder broker: its tasks are sent through the broker set by `default_broker`.

    Every broker finds the shared tasks by name, so a worker of the real broker runs them.
    """

    def __init__(self) -> None:
        """Create the placeholder with no default broker yet."""
        super().__init__()
        self._default_broker: AsyncBroker | None = None

    def default_broker(self, new_broker: AsyncBroker) -> None:
        """Send shared tasks through ``new_broker`` from now on."""
        self._default_broker = new_broker

    def target_broker(self) -> AsyncBroker:
        """Return the default broker; `SharedBrokerSendTaskError` if none was set."""
        if self._default_broker is None:
            raise SharedBrokerSendTaskError
        return self._default_broker

    def register_task(
        self,
        func: Callable[_Params, _ReturnType],
        task_name: str | None = None,
        **labels: Any,
    ) -> AsyncTaskiqDecoratedTask[_Params, _ReturnType]:
        """Register a shared task, findable by every broker."""
        decorated = super().register_task(func, task_name, **labels)
        shared_task_registry[decorated.task_name] = decorated
        return decorated

    async def kick(self, message: BrokerMessage) -> None:
        """Send through the default broker."""
        await self.target_broker().kick(message)

    async def kick_many(self, messages: Sequence[BrokerMessage]) -> None:
        """Send the batch through the default broker (in one round trip if it can)."""
        await self.target_broker().kick_many(messages)

    def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        """Refuse: the shared broker only forwards."""
        raise SharedBrokerListenError


#: The process-wide shared broker.
async_shared_broker = AsyncSharedBroker()

#: The shared broker's ``task`` decorator: ``@shared_task`` declares a shared task.
shared_task = async_shared_broker.task
