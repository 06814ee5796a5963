"""taskq-redis: a durable broker on Redis Streams (acks, leases, redelivery, dead letters)."""

from taskq_redis.broker import RedisStreamBroker
from taskq_redis.dead_letters import DeadLetter, DeadLetterQueue
from taskq_redis.errors import InvalidLabelError, RedisUnavailableError, SendUnavailableError

__all__ = [
    "DeadLetter",
    "DeadLetterQueue",
    "InvalidLabelError",
    "RedisStreamBroker",
    "RedisUnavailableError",
    "SendUnavailableError",
]
