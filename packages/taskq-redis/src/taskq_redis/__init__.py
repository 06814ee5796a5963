"""taskq-redis: a durable broker on Redis Streams, and the one Redis layer of taskq.

The broker (acks, leases, redelivery, dead letters), the event store (`RedisEventStore`), the
cancellation store (`RedisCancellationStore`), the shared limiter and unique key store
(`RedisLimiter`, `RedisUniqueStore`), and what every Redis part of taskq shares: the connection
(`taskq_redis.connection`), the reconnect policy (`taskq_redis.reconnect`, run by
`taskq_redis.retrying`), the error family (`taskq_redis.errors`) and test helpers
(`taskq_redis.testing`).

Each name below is imported from its module on first access: a program (or a command such as
``taskq status``) that uses the broker alone does not import the stores it does not use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq.toolkit import import_on_access

if TYPE_CHECKING:
    from taskq_redis.broker import RedisStreamBroker
    from taskq_redis.cancellation import RedisCancellationStore
    from taskq_redis.connection import RedisConnection
    from taskq_redis.dead_letters import DeadLetter, DeadLetterQueue
    from taskq_redis.errors import (
        EventStoreUnavailableError,
        InvalidLabelError,
        RedisAnsweredError,
        RedisBrokerUnavailableError,
        RedisUnavailableError,
        SendRefusedError,
        SendUnavailableError,
    )
    from taskq_redis.event_store import RedisEventStore
    from taskq_redis.limiter import RedisLimiter
    from taskq_redis.unique import RedisUniqueStore

#: The public names, with the module that defines each.
_DEFINED_IN = {
    "DeadLetter": "taskq_redis.dead_letters",
    "DeadLetterQueue": "taskq_redis.dead_letters",
    "EventStoreUnavailableError": "taskq_redis.errors",
    "InvalidLabelError": "taskq_redis.errors",
    "RedisAnsweredError": "taskq_redis.errors",
    "RedisBrokerUnavailableError": "taskq_redis.errors",
    "RedisCancellationStore": "taskq_redis.cancellation",
    "RedisConnection": "taskq_redis.connection",
    "RedisEventStore": "taskq_redis.event_store",
    "RedisLimiter": "taskq_redis.limiter",
    "RedisStreamBroker": "taskq_redis.broker",
    "RedisUnavailableError": "taskq_redis.errors",
    "RedisUniqueStore": "taskq_redis.unique",
    "SendRefusedError": "taskq_redis.errors",
    "SendUnavailableError": "taskq_redis.errors",
}

__all__ = [
    "DeadLetter",
    "DeadLetterQueue",
    "EventStoreUnavailableError",
    "InvalidLabelError",
    "RedisAnsweredError",
    "RedisBrokerUnavailableError",
    "RedisCancellationStore",
    "RedisConnection",
    "RedisEventStore",
    "RedisLimiter",
    "RedisStreamBroker",
    "RedisUnavailableError",
    "RedisUniqueStore",
    "SendRefusedError",
    "SendUnavailableError",
]


__getattr__ = import_on_access(globals(), _DEFINED_IN)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
