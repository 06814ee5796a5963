"""Which limiter and unique key store a broker uses: the one it was given, or an in-process one.

An in-process store is only right when every worker of the broker shares one process, so a
broker that declares ``cross_process`` must be given a shared one (`SharedStoreRequiredError`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq.capabilities import Capability
from taskq.exceptions import SharedStoreRequiredError

if TYPE_CHECKING:
    from taskq.abc.limiter import TaskLimiter
    from taskq.abc.unique_store import UniqueKeyStore
    from taskq.broker import AsyncBroker


def limiter_of(broker: AsyncBroker) -> TaskLimiter:
    """The limiter of ``broker``; an in-process `MemoryLimiter` if it runs in one process.

    Raises:
        SharedStoreRequiredError: ``broker`` declares ``cross_process`` and has no limiter.
    """
    if broker.limiter is None:
        _require_one_process(broker, "a rate or concurrency limit", "with_limiter")
        from taskq.control.memory_limiter import MemoryLimiter

        broker.limiter = MemoryLimiter()
    return broker.limiter


def unique_store_of(broker: AsyncBroker) -> UniqueKeyStore:
    """The unique key store of ``broker``; an in-process one if it runs in one process.

    Raises:
        SharedStoreRequiredError: ``broker`` declares ``cross_process`` and has no store.
    """
    if broker.unique_store is None:
        _require_one_process(broker, "a unique task", "with_unique_store")
        from taskq.control.memory_unique import MemoryUniqueStore

        broker.unique_store = MemoryUniqueStore()
    return broker.unique_store


def _require_one_process(broker: AsyncBroker, feature: str, builder: str) -> None:
    if Capability.CROSS_PROCESS in broker.capabilities:
        raise SharedStoreRequiredError(
            broker=type(broker).__name__, feature=feature, builder=builder
        )
