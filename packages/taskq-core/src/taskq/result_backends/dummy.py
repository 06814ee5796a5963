"""`DummyResultBackend`: the default backend of a broker that was given none; it keeps nothing."""

from __future__ import annotations

from typing import Any

from taskq.abc.result_backend import AsyncResultBackend
from taskq.result import TaskiqResult


class DummyResultBackend(AsyncResultBackend[Any]):
    """Discards results; every task looks ready and its result is an empty success.

    A broker uses it until ``with_result_backend`` gives it a real one, so that sending
    tasks whose results nobody reads costs nothing.
    """

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        """Discard the result."""

    async def is_result_ready(self, task_id: str) -> bool:
        """Always True: there is nothing to wait for."""
        return True

    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[Any]:
        """Return an empty successful result."""
        return TaskiqResult(is_err=False, return_value=None, execution_time=0.0)
