"""The errors of the Redis broker beyond taskq's own: a server that does not answer.

`InvalidLabelError` (a bad ``delay`` or ``priority`` label) is taskq's own, re-exported here.
"""

from __future__ import annotations

from taskq.exceptions import BrokerError, InvalidLabelError, SendTaskError

__all__ = ["InvalidLabelError", "RedisUnavailableError", "SendUnavailableError"]


class RedisUnavailableError(BrokerError):
    """The Redis server did not answer: check that it runs and that the broker's URL is right."""

    __template__ = "the Redis server does not answer"


class SendUnavailableError(RedisUnavailableError, SendTaskError):
    """A task could not be sent: Redis stayed unreachable for the broker's ``send_timeout_s``."""

    __template__ = "the task could not be sent: the Redis server does not answer"
