"""The process-wide registry of shared tasks: every broker finds them by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskq.decor import AsyncTaskiqDecoratedTask

#: Tasks registered on `async_shared_broker`, by task name.
shared_task_registry: dict[str, AsyncTaskiqDecoratedTask[Any, Any]] = {}
