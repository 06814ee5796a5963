"""taskq-amqp: a durable broker on RabbitMQ.

`AmqpBroker` sends with publisher confirms, consumes with manual acknowledgements, keeps dead
letters with their reason (``taskq dlq``), delays without plugins and orders by priority on
classic queues.
"""

from taskq_amqp.broker import AmqpBroker
from taskq_amqp.dead_letters import DeadLetter, DeadLetterQueue
from taskq_amqp.errors import (
    AmqpUnavailableError,
    MessageTooLargeError,
    SendUnavailableError,
    UnroutableError,
)

__all__ = [
    "AmqpBroker",
    "AmqpUnavailableError",
    "DeadLetter",
    "DeadLetterQueue",
    "MessageTooLargeError",
    "SendUnavailableError",
    "UnroutableError",
]
