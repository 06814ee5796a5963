"""`AsyncTaskiqTask`: the client's handle on a sent task, to wait for and read its result."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from taskq.casting import cast_value
from taskq.exceptions import (
    CancellationUnavailableError,
    ResultGetError,
    ResultIsReadyError,
    TaskiqError,
    TaskiqResultTimeoutError,
)
from taskq.task_events import stored_task_id

if TYPE_CHECKING:
    from taskq.abc.broker import AsyncBroker
    from taskq.abc.result_backend import AsyncResultBackend
    from taskq.progress import TaskProgress
    from taskq.result import TaskiqResult

logger = logging.getLogger("taskq.task")
_ReturnType = TypeVar("_ReturnType")


class AsyncTaskiqTask(Generic[_ReturnType]):
    """A sent task: ask whether it is done, wait for it, read its result or progress, cancel it."""

    def __init__(
        self,
        task_id: str,
        result_backend: AsyncResultBackend[_ReturnType],
        return_type: Any = None,
        broker: AsyncBroker | None = None,
    ) -> None:
        """Track task ``task_id`` through ``result_backend``.

        ``return_type`` (the task's return annotation) is used to cast a result that came
        back as plain data, e.g. a pydantic model from a JSON result backend. ``broker``,
        the broker that sent it, is the one `cancel` asks.
        """
        self.task_id = task_id
        self.result_backend = result_backend
        self.return_type = return_type
        self.broker = broker

    async def cancel(self, reason: str = "") -> None:
        """Cancel this task through the broker that sent it (see `AsyncBroker.cancel`).

        Raises:
            CancellationUnavailableError: the broker has no cancellation store, or the handle
                was made without a broker.
        """
        if self.broker is None:
            raise CancellationUnavailableError(broker="a task handle made without a broker")
        await self.broker.cancel(self.task_id, reason)

    async def is_ready(self) -> bool:
        """Tell whether the result is stored; `ResultIsReadyError` if the backend cannot say."""
        try:
            return await self.result_backend.is_result_ready(self.task_id)
        except TaskiqError:
            raise
        except Exception as exc:
            raise ResultIsReadyError(f"cannot check task {self.task_id}: {exc}") from exc

    async def get_result(self, with_logs: bool = False) -> TaskiqResult[_ReturnType]:
        """Read the stored result; `ResultGetError` when there is none or it cannot be read."""
        try:
            result = await self.result_backend.get_result(self.task_id, with_logs=with_logs)
        except ResultGetError:
            raise
        except Exception as exc:
            raise ResultGetError(f"cannot read the result of task {self.task_id}: {exc}") from exc
        return self._cast(result)

    def _cast(self, result: TaskiqResult[_ReturnType]) -> TaskiqResult[_ReturnType]:
        """``result`` with its value cast to the task's return annotation, where it needs it."""
        value, return_type = result.return_value, self.return_type
        # a value of exactly the annotated type (None for ``-> None``) is kept as it is
        if return_type is not None and type(value) is not return_type and not result.is_err:
            result.return_value = self._cast_return(value)
        return result

    async def wait_result(
        self,
        check_interval: float = 0.2,
        timeout: float = -1.0,
        with_logs: bool = False,
    ) -> TaskiqResult[_ReturnType]:
        """Wait for the result and return it.

        ``timeout`` is in seconds (zero or less: wait forever); past it,
        `TaskiqResultTimeoutError` is raised. ``check_interval`` is the polling period of
        backends that cannot notify; backends that can wake the waiter at once.

        Raises:
            ValueError: ``timeout`` or ``check_interval`` is NaN (no wait can be measured
                against it).
        """
        if timeout != timeout or check_interval != check_interval:  # NaN: a wait without end
            raise ValueError(
                f"wait_result needs numbers, got timeout={timeout!r}, "
                f"check_interval={check_interval!r}"
            )
        held = self.result_backend.result_now(self.task_id)
        if held is not None:
            return self._cast(held)
        limit = timeout if timeout > 0 else None
        try:
            ready = await self.result_backend.wait_ready(self.task_id, limit, check_interval)
        except TaskiqError:
            raise
        except Exception as exc:
            raise ResultIsReadyError(f"cannot wait for task {self.task_id}: {exc}") from exc
        if not ready:
            raise TaskiqResultTimeoutError(timeout=timeout)
        return await self.get_result(with_logs=with_logs)

    async def get_progress(self) -> TaskProgress[Any] | None:
        """Return the task's latest progress report, or None when it reported none."""
        return await self.result_backend.get_progress(self.task_id)

    def _cast_return(self, value: Any) -> Any:
        try:
            return cast_value(self.return_type, value)
        except (ValueError, TypeError):
            logger.warning(
                "Result of task %s does not fit its return annotation %r; returning it as is",
                stored_task_id(self.task_id),
                self.return_type,
            )
            return value

    def __repr__(self) -> str:
        return f"AsyncTaskiqTask(task_id={self.task_id!r})"
