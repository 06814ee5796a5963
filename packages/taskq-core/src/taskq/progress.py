"""Task progress: what a running task reports about itself, and the dependency that reports it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from taskiq_dependencies import Depends

from taskq.context import Context
from taskq.model_methods import ModelMethods

_ProgressType = TypeVar("_ProgressType")


class TaskState(str, enum.Enum):
    """The coarse state a task reports with its progress."""

    STARTED = "STARTED"
    FAILURE = "FAILURE"
    SUCCESS = "SUCCESS"
    RETRY = "RETRY"


@dataclass(slots=True)
class TaskProgress(ModelMethods, Generic[_ProgressType]):
    """A progress report: a state and any metadata the task attaches.

    ``state`` must be a `TaskState` or a string, as in taskiq: anything else raises
    pydantic's ``ValidationError``. ``model_dump``, ``model_validate`` and the other pydantic
    methods give taskiq's results.
    """

    state: TaskState | str
    meta: _ProgressType | None = None

    def __post_init__(self) -> None:
        """Validate ``state`` as taskiq does (the common case costs one isinstance check)."""
        state: object = self.state  # typed as valid, but callers may pass anything
        if not isinstance(state, str):
            self.state = self.model_validate({"state": state, "meta": self.meta}).state

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain data for a serializer."""
        state = self.state.value if isinstance(self.state, TaskState) else self.state
        return {"state": state, "meta": self.meta}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskProgress[Any]:
        """Rebuild a report from `to_dict`'s data."""
        state = data["state"]
        return TaskProgress(
            state=TaskState(state) if state in TaskState.__members__ else state,
            meta=data.get("meta"),
        )


class ProgressTracker(Generic[_ProgressType]):
    """A dependency that lets a task report progress to the result backend.

    Use it as ``tracker: ProgressTracker[int] = TaskiqDepends()`` in a task's signature.
    """

    def __init__(self, context: Context = Depends()) -> None:
        """Bind the tracker to the running task's context."""
        self.context = context

    async def set_progress(self, state: TaskState | str, meta: _ProgressType | None = None) -> None:
        """Store a progress report for the running task."""
        backend = self.context.broker.result_backend
        await backend.set_progress(self.context.message.task_id, TaskProgress(state, meta))

    async def get_progress(self) -> TaskProgress[_ProgressType] | None:
        """Read back the running task's latest progress report."""
        backend = self.context.broker.result_backend
        return await backend.get_progress(self.context.message.task_id)
