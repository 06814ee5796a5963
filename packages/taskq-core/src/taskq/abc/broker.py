"""The broker contract: what every broker implements, and where its base class lives.

A broker subclasses `AsyncBroker` and implements two methods:

- ``async kick(message: BrokerMessage) -> None`` sends ``message.message`` (bytes, delivered
  byte for byte) to the queue;
- ``listen() -> AsyncGenerator[bytes | AckableMessage, None]`` yields received messages until
  the broker shuts down;

and declares what else it can do in ``capabilities`` (a frozenset of `Capability`).

`AsyncBroker` itself is defined in `taskq.broker`, with the machinery every broker shares
(tasks, middlewares, events, default serializer and formatter). This module only names it,
on first use, so that importing the contracts imports nothing concrete:
``from taskq.abc.broker import AsyncBroker`` is the same class as ``taskq.AsyncBroker``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskq.acks import AckableMessage
    from taskq.broker import AsyncBroker
    from taskq.task_ids import default_id_generator


#: The names this module gives on use, with the module that defines each.
_DEFINED_IN = {
    "AsyncBroker": "taskq.broker",
    "AckableMessage": "taskq.acks",  # where taskiq's users import these two from
    "default_id_generator": "taskq.task_ids",
}


def __getattr__(name: str) -> Any:
    # The deferred imports of the contracts: compatibility names, resolved on use.
    module = _DEFINED_IN.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["AckableMessage", "AsyncBroker", "default_id_generator"]
