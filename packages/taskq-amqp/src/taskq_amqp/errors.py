"""The errors of the RabbitMQ broker: one family for "the server does not answer"."""

from __future__ import annotations

from aiormq.exceptions import AuthenticationError, ProbableAuthenticationError

from taskq.exceptions import BrokerError, SendTaskError

__all__ = [
    "AccessRefusedError",
    "AmqpUnavailableError",
    "MessageTooLargeError",
    "SendUnavailableError",
    "UnroutableError",
    "unavailable",
]


class AmqpUnavailableError(BrokerError):
    """RabbitMQ did not answer, or refused the URL's login: check that it runs and the URL."""

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


class AccessRefusedError(ConnectionRefusedError):
    """RabbitMQ refused to open the URL's vhost for its user (the cause of an unavailable error).

    Retried as an outage is (an operator may create the vhost or grant the user meanwhile).
    """


class ConnectionBlockedError(ConnectionError):
    """RabbitMQ blocked the connection's publishing (a memory or disk alarm) for the whole wait.

    The connection is alive: it is kept, and publishing resumes on it when the alarm clears.
    """

    def __init__(self, waited_s: float) -> None:
        super().__init__(f"RabbitMQ blocked the connection for {waited_s:g} s")
        self.waited_s = waited_s


#: The causes that mean RabbitMQ answered, refusing the URL's login or vhost.
REFUSALS = (AccessRefusedError, AuthenticationError, ProbableAuthenticationError)


def unavailable(
    error_type: type[AmqpUnavailableError],
    action: str,
    server: str,
    cause: BaseException,
    waited_s: float,
) -> AmqpUnavailableError:
    """The error of type ``error_type`` saying that ``action`` failed: ``server`` is silent.

    Or, when ``cause`` is one of `REFUSALS`, that ``server`` refused the login or the vhost.
    """
    if isinstance(cause, ConnectionBlockedError):
        return error_type(
            f"cannot {action}: RabbitMQ at {server} blocked publishing for {waited_s:g} s, as "
            "it does during a memory or disk alarm (`rabbitmqctl status` lists alarms): free "
            "memory or disk there, or let the workers drain the queues; publishing resumes "
            "when the alarm clears"
        )
    if isinstance(cause, REFUSALS):
        reason = cause.args[0] if len(cause.args) == 1 else cause
        return error_type(
            f"cannot {action}: RabbitMQ at {server} refused the login ({reason}), retried for "
            f"{waited_s:g} s; check the user, the password and the vhost of the URL"
        )
    return error_type(
        f"cannot {action}: RabbitMQ at {server} did not answer for {waited_s:g} s "
        f"({cause!r}); check that it runs and that the URL is right"
    )
