"""`TaskiqResult`: what a task run produced (a value or an error) and how long it took."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from typing_extensions import Self

from taskq.model_methods import ModelMethods
from taskq.remote_error import decode_error, encode_error

_ReturnType = TypeVar("_ReturnType")


@dataclass(slots=True, kw_only=True)
class TaskiqResult(ModelMethods, Generic[_ReturnType]):
    """The outcome of one task run.

    ``is_err`` tells whether the task raised; then ``error`` holds the exception and
    ``return_value`` is None. ``execution_time`` is in seconds; ``labels`` are the message's.
    ``log`` is kept for compatibility and is None unless a backend stores logs.
    ``model_dump``, ``model_validate`` and the other pydantic methods give taskiq's results.
    """

    is_err: bool
    return_value: _ReturnType
    execution_time: float
    labels: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    log: str | None = None

    def raise_for_error(self) -> Self:
        """Raise the task's exception if it failed; otherwise return this result."""
        if self.error is not None:
            raise self.error
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain data for a serializer, with the error encoded."""
        return {
            "is_err": self.is_err,
            "return_value": self.return_value,
            "execution_time": self.execution_time,
            "labels": self.labels,
            "error": None if self.error is None else encode_error(self.error),
            "log": self.log,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskiqResult[Any]:
        """Rebuild a result from `to_dict`'s data (after a serializer round trip)."""
        error = data.get("error")
        return TaskiqResult(
            is_err=bool(data["is_err"]),
            return_value=data.get("return_value"),
            execution_time=float(data.get("execution_time", 0.0)),
            labels=dict(data.get("labels") or {}),
            error=None if error is None else decode_error(error),
            log=data.get("log"),
        )


_new_instance = object.__new__


def result_of_run(
    return_value: Any, execution_time: float, labels: dict[str, Any], error: BaseException | None
) -> TaskiqResult[Any]:
    """The `TaskiqResult` of a run: ``TaskiqResult(...)`` with these fields, without its cost.

    Calling the class with keywords costs several times more than filling in a new instance
    (the interpreter builds a tuple and a dict for the call); a worker makes one per message.
    ``is_err`` is whether ``error`` is set; ``log`` is None.
    """
    result: TaskiqResult[Any] = _new_instance(TaskiqResult)
    result.is_err = error is not None
    result.return_value = return_value
    result.execution_time = execution_time
    result.labels = labels
    result.error = error
    result.log = None
    return result
