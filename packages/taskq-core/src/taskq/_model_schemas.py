"""The pydantic models `ModelMethods` converts through: taskiq's models' fields, in its order.

Imported on the first call of a model method only (it imports pydantic).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_serializer, field_validator

from taskq.message import TaskiqMessage
from taskq.progress import TaskProgress, TaskState
from taskq.remote_error import decode_error, describe_error, restore_described_error
from taskq.result import TaskiqResult
from taskq.scheduled_task import ScheduledTask

_TIMEDELTA = TypeAdapter(timedelta)


class TaskiqResultModel(BaseModel):
    """`TaskiqResult`; ``error`` is dumped as taskiq describes exceptions."""

    model_config = ConfigDict(arbitrary_types_allowed=True, title="TaskiqResult")

    is_err: bool
    log: str | None = None
    return_value: Any
    execution_time: float
    labels: dict[str, Any] = Field(default_factory=dict)
    error: BaseException | None = None

    @field_serializer("error")
    def _dump_error(self, error: BaseException | None) -> dict[str, Any] | None:
        return None if error is None else describe_error(error)

    @field_validator("error", mode="before")
    @classmethod
    def _load_error(cls, value: Any) -> BaseException | None:
        if not value:
            return None
        if isinstance(value, BaseException):
            return value
        if isinstance(value, Mapping) and "exc_type" in value:
            return restore_described_error(value)
        if isinstance(value, Mapping) and "type" in value:
            return decode_error(dict(value))  # taskq's own encoding (`TaskiqResult.to_dict`)
        raise ValueError("error must be an exception or a described exception")


class TaskiqMessageModel(BaseModel):
    """`TaskiqMessage` (taskiq's ``labels_types`` is accepted and ignored)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, title="TaskiqMessage")

    task_id: str
    task_name: str
    labels: dict[str, Any]
    args: list[Any]
    kwargs: dict[str, Any]


class ScheduledTaskModel(BaseModel):
    """`ScheduledTask`; its own checks run when the data class is made."""

    model_config = ConfigDict(arbitrary_types_allowed=True, title="ScheduledTask")

    task_name: str
    labels: dict[str, Any]
    args: list[Any]
    kwargs: dict[str, Any]
    task_id: str | None = None
    schedule_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    cron: str | None = None
    cron_offset: timedelta | str | None = None
    time: datetime | None = None
    interval: int | float | timedelta | None = None

    @field_validator("cron_offset", mode="before")
    @classmethod
    def _load_offset(cls, value: Any) -> Any:
        # as taskiq: a string that reads as a duration ("+05:30", "PT5H") is one
        if isinstance(value, str):
            try:
                return _TIMEDELTA.validate_python(value)
            except ValueError:
                return value
        return value


class TaskProgressModel(BaseModel):
    """`TaskProgress`: the state is a `TaskState` or a string."""

    model_config = ConfigDict(arbitrary_types_allowed=True, title="TaskProgress")

    state: TaskState | str
    meta: Any


_MODELS: dict[type[Any], type[BaseModel]] = {
    TaskiqResult: TaskiqResultModel,
    TaskiqMessage: TaskiqMessageModel,
    ScheduledTask: ScheduledTaskModel,
    TaskProgress: TaskProgressModel,
}


def model_for(cls: type[Any]) -> type[BaseModel]:
    """Return the pydantic model of ``cls`` (or of the taskq class it derives from)."""
    for klass in cls.__mro__:
        model = _MODELS.get(klass)
        if model is not None:
            return model
    raise TypeError(f"{cls.__name__} has no pydantic model")
