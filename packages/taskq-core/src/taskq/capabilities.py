"""Capabilities: the named, checkable facts an implementation declares about itself."""

from __future__ import annotations

import enum


class Capability(str, enum.Enum):
    """What a broker, result backend or schedule source can do beyond the mandatory contract.

    Brokers: ``ACKS``, ``REJECT``, ``REDELIVERY``, ``DELAY``, ``PRIORITY``, ``LOAD_BALANCING``,
    ``CROSS_PROCESS``, ``INSPECT``, ``CANCEL`` (its instances come with a cancellation store
    that reaches its workers: ``broker.cancel`` works out of the box), ``BATCH_SEND``
    (`kick_many` sends a batch in one round trip, not one message at a time). Result backends:
    ``PROGRESS``, ``TTL``, ``NOTIFY``, ``CROSS_PROCESS``.
    Schedule sources: ``DYNAMIC``, ``PERSISTENT``.
    """

    ACKS = "acks"
    REJECT = "reject"
    REDELIVERY = "redelivery"
    DELAY = "delay"
    PRIORITY = "priority"
    LOAD_BALANCING = "load_balancing"
    CROSS_PROCESS = "cross_process"
    INSPECT = "inspect"
    PROGRESS = "progress"
    TTL = "ttl"
    NOTIFY = "notify"
    DYNAMIC = "dynamic"
    PERSISTENT = "persistent"
    CANCEL = "cancel"
    BATCH_SEND = "batch_send"

    def __str__(self) -> str:
        return self.value


#: The labels whose meaning a broker must implement, with the capability that says it does.
LABEL_CAPABILITIES: dict[str, Capability] = {
    "delay": Capability.DELAY,
    "priority": Capability.PRIORITY,
}
