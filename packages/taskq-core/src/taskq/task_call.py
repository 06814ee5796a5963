"""`TaskCall`: the arguments of one call of a task, made by ``task.call(...)`` for `kiq_many`."""

from __future__ import annotations

import dataclasses
from typing import Any, Generic

from typing_extensions import ParamSpec

_Params = ParamSpec("_Params")


@dataclasses.dataclass(frozen=True, slots=True)
class TaskCall(Generic[_Params]):
    """The arguments of one call of a task (and, optionally, its task id), not sent yet.

    Make it with ``task.call(*args, **kwargs)``: the type checker checks the arguments against
    the task's signature there, as for ``kiq``. ``task_id`` None: the broker's id generator
    makes one when the call is sent.
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    task_id: str | None = None

    def with_task_id(self, task_id: str) -> TaskCall[_Params]:
        """The same call, sent under ``task_id`` instead of a generated id."""
        return dataclasses.replace(self, task_id=task_id)
