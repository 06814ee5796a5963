"""The two shapes of a task message: decoded (`TaskiqMessage`) and on the wire (`BrokerMessage`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskq.model_methods import ModelMethods


@dataclass(slots=True)
class TaskiqMessage(ModelMethods):
    """A task invocation: which task, with which arguments and labels, under which id.

    ``model_dump``, ``model_validate`` and the other pydantic methods give taskiq's results.
    """

    task_id: str
    task_name: str
    labels: dict[str, Any] = field(default_factory=dict)
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BrokerMessage:
    """A message as a broker carries it: the encoded bytes plus the fields a broker may route on.

    A broker must deliver ``message`` byte for byte; ``labels`` are there for routing
    decisions such as ``delay`` and ``priority``.
    """

    task_id: str
    task_name: str
    message: bytes
    labels: dict[str, Any] = field(default_factory=dict)
