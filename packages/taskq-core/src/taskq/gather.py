"""`gather`: wait for the results of several tasks at once."""

from __future__ import annotations

import asyncio
from typing import Any

from taskq.exceptions import TaskiqResultTimeoutError
from taskq.result import TaskiqResult
from taskq.task import AsyncTaskiqTask


async def gather(
    *tasks: AsyncTaskiqTask[Any],
    timeout: float = -1,
    with_logs: bool = False,
    periodicity: float = 0.1,
) -> tuple[TaskiqResult[Any], ...]:
    """Wait for every task's result; return them in the order of ``tasks``.

    ``timeout`` (seconds, zero or less: none) bounds the whole wait and raises
    `TaskiqResultTimeoutError`; ``periodicity`` is the polling period of backends that
    cannot notify.
    """
    waits = [task.wait_result(check_interval=periodicity, with_logs=with_logs) for task in tasks]
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*waits), timeout=timeout if timeout > 0 else None
        )
    except asyncio.TimeoutError:
        raise TaskiqResultTimeoutError(timeout=timeout) from None
    return tuple(results)
