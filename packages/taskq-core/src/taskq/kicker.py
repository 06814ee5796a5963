"""`AsyncKicker`: builds a task message, runs the send middlewares and hands it to the broker."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from typing_extensions import ParamSpec, Self

from taskq.capabilities import LABEL_CAPABILITIES
from taskq.exceptions import SendTaskError, TaskiqError, UnsupportedCapabilityError
from taskq.message import TaskiqMessage
from taskq.task import AsyncTaskiqTask

if TYPE_CHECKING:
    from taskq.abc.broker import AsyncBroker

_Params = ParamSpec("_Params")
_ReturnType = TypeVar("_ReturnType")
_Value = TypeVar("_Value")


class AsyncKicker(Generic[_Params, _ReturnType]):
    """Sends one task with extra labels, a chosen task id or another broker.

    Get one from ``task.kicker()``; the ``with_*`` methods return the same kicker.
    """

    def __init__(
        self,
        task_name: str,
        broker: AsyncBroker,
        labels: dict[str, Any],
        return_type: Any = None,
    ) -> None:
        """Prepare to send task ``task_name`` through ``broker`` with ``labels``."""
        self.task_name = task_name
        self.broker = broker
        self.labels = dict(labels)
        self.return_type = return_type
        self.custom_task_id: str | None = None

    def with_labels(self, **labels: Any) -> Self:
        """Add (or override) labels of the message."""
        self.labels.update(labels)
        return self

    def with_task_id(self, task_id: str) -> Self:
        """Send the message under ``task_id`` instead of a generated one."""
        self.custom_task_id = task_id
        return self

    def with_broker(self, broker: AsyncBroker) -> Self:
        """Send through ``broker`` instead of the task's own broker."""
        self.broker = broker
        return self

    @overload
    async def kiq(
        self: AsyncKicker[_Params, Coroutine[Any, Any, _Value]],
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> AsyncTaskiqTask[_Value]: ...

    @overload
    async def kiq(
        self: AsyncKicker[_Params, _Value],
        *args: _Params.args,
        **kwargs: _Params.kwargs,
    ) -> AsyncTaskiqTask[_Value]: ...

    async def kiq(self, *args: Any, **kwargs: Any) -> Any:
        """Send the task with these arguments; return a handle to wait for its result.

        Raises `UnsupportedCapabilityError` for a ``delay``/``priority`` label the broker
        cannot honour, `SerializationError` for an argument the serializer cannot encode and
        `SendTaskError` when the broker fails to send.
        """
        return await send_task(
            self.broker,
            self.task_name,
            self.labels,
            args,
            kwargs,
            self.return_type,
            self.custom_task_id,
        )

    def __repr__(self) -> str:
        return f"AsyncKicker({self.task_name!r}, labels={self.labels!r})"


async def send_task(
    broker: AsyncBroker,
    task_name: str,
    labels: dict[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    return_type: Any = None,
    task_id: str | None = None,
) -> AsyncTaskiqTask[Any]:
    """Build the message, run the send middlewares, kick it; return a handle on the result."""
    broker = broker.target_broker()
    message = TaskiqMessage(
        task_id or broker.id_generator(), task_name, dict(labels), list(args), kwargs
    )
    hooks = broker.middleware_hooks
    for hook in hooks["pre_send"]:
        message = await _settle(hook(message))
    if message.labels:
        _check_labels(broker, message.labels)
    broker_message = broker.formatter.dumps(message)
    try:
        await broker.kick(broker_message)
    except TaskiqError:
        raise
    except Exception as exc:
        raise SendTaskError(f"{type(broker).__name__} could not send: {exc!r}") from exc
    for hook in hooks["post_send"]:
        await _settle(hook(message))
    return AsyncTaskiqTask(message.task_id, broker.result_backend, return_type)


async def _settle(value: Any) -> Any:
    if hasattr(value, "__await__"):
        return await value
    return value


def _check_labels(broker: AsyncBroker, labels: dict[str, Any]) -> None:
    for label, capability in LABEL_CAPABILITIES.items():
        if labels.get(label) and capability not in broker.capabilities:  # 0 asks for nothing
            raise UnsupportedCapabilityError(
                broker=type(broker).__name__, capability=capability.value, label=label
            )
