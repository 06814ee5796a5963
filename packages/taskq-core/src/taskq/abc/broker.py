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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskq.broker import AsyncBroker


def __getattr__(name: str) -> Any:
    # The one deferred import of the contracts: the compatibility name, resolved on use.
    if name == "AsyncBroker":
        from taskq.broker import AsyncBroker

        return AsyncBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AsyncBroker"]
