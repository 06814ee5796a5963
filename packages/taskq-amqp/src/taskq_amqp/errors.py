"""The errors of the RabbitMQ broker: one family for "the server does not answer"."""

from __future__ import annotations

from taskq.exceptions import BrokerError, SendTaskError

__all__ = [
    "AmqpUnavailableError",
    "MessageTooLargeError",
    "SendUnavailableError",
    "UnroutableError",
    "unavailable",
]


class AmqpUnavailableError(BrokerError):
    """RabbitMQ did not answer: check that it runs and that the URL is right."""

    __template__ = "the RabbitMQ server does not answer"


class SendUnavailableError(AmqpUnavailableError, SendTaskError):
    """A task could not be sent: RabbitMQ stayed unreachable for the broker's ``send_timeout_s``."""

    __template__ = "the task could not be sent: the RabbitMQ server does not answer"


class UnroutableError(SendTaskError):
    """RabbitMQ returned a message: the queue it was sent to does not exist (it was deleted).

    The message was not sent. The broker declares its queues again for the next message:
    send it again.
    """

    __template__ = "the task could not be sent: RabbitMQ has no such queue"


class MessageTooLargeError(SendTaskError):
    """RabbitMQ refuses the message: it is larger than the server's ``max_message_size``.

    The message was not sent, and sending it again fails the same way: send less (keep large
    data elsewhere and send a reference to it), or raise the server's limit.
    """

    __template__ = "the task could not be sent: it is larger than RabbitMQ accepts"


def unavailable(
    error_type: type[AmqpUnavailableError],
    action: str,
    server: str,
    cause: BaseException,
    waited_s: float,
) -> AmqpUnavailableError:
    """The error of type ``error_type`` saying that ``action`` failed: ``server`` is silent."""
    return error_type(
        f"cannot {action}: RabbitMQ at {server} did not answer for {waited_s:g} s "
        f"({cause!r}); check that it runs and that the URL is right"
    )
