"""taskq-redis: a durable broker on Redis Streams, and the one Redis layer of taskq.

The broker (acks, leases, redelivery, dead letters), the event store (`RedisEventStore`), the
cancellation store (`RedisCancellationStore`), the shared limiter and unique key store
(`RedisLimiter`, `RedisUniqueStore`), and what every Redis part of taskq shares: the connection
(`taskq_redis.connection`), the reconnect policy (`taskq_redis.reconnect`, run by
`taskq_redis.retrying`), the error family (`taskq_redis.errors`) and test helpers
(`taskq_redis.testing`).
"""

from taskq_redis.broker import RedisStreamBroker
from taskq_redis.cancellation import RedisCancellationStore
from taskq_redis.connection import RedisConnection
from taskq_redis.dead_letters import DeadLetter, DeadLetterQueue
from taskq_redis.errors import (
    EventStoreUnavailableError,
    InvalidLabelError,
    RedisBrokerUnavailableError,
    RedisUnavailableError,
    SendUnavailableError,
)
from taskq_redis.event_store import RedisEventStore
from taskq_redis.limiter import RedisLimiter
from taskq_redis.unique import RedisUniqueStore

__all__ = [
    "DeadLetter",
    "DeadLetterQueue",
    "EventStoreUnavailableError",
    "InvalidLabelError",
    "RedisBrokerUnavailableError",
    "RedisCancellationStore",
    "RedisConnection",
    "RedisEventStore",
    "RedisLimiter",
    "RedisStreamBroker",
    "RedisUnavailableError",
    "RedisUniqueStore",
    "SendUnavailableError",
]
