"""The errors of the Redis broker beyond taskq's own: a server that does not answer, a bad label."""

from __future__ import annotations

from taskq.exceptions import BrokerError, SendTaskError


class RedisUnavailableError(BrokerError):
    """The Redis server did not answer: check that it runs and that the broker's URL is right."""

    __template__ = "the Redis server does not answer"


class SendUnavailableError(RedisUnavailableError, SendTaskError):
    """A task could not be sent: Redis stayed unreachable for the broker's ``send_timeout_s``."""

    __template__ = "the task could not be sent: the Redis server does not answer"


class InvalidLabelError(SendTaskError):
    """A ``delay`` or ``priority`` label is not a number: send seconds, or an integer priority."""

    __template__ = "the label {label!r} must be a number, got {value!r}"
