"""Delayed messages: kept in a sorted set by due time, moved into their stream once due.

Every worker runs `move_due_forever`; the move is one Lua script (``ZRANGEBYSCORE``, ``XADD``,
``ZREM``), so however many workers run it, each message is moved exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from redis.exceptions import ResponseError

from taskq_redis.reconnect import CONNECTION_ERRORS, AnswerLog

if TYPE_CHECKING:
    from taskq_redis.options import BrokerOptions
    from taskq_redis.reconnect import Reconnector
    from taskq_redis.scripts import ScriptArgs, ScriptKeys, Scripts

logger = logging.getLogger("taskq.redis")

#: Due messages moved per script call (the script runs again at once when it moved that many).
MOVE_BATCH = 1000


def delayed_member(level: int, payload: bytes) -> bytes:
    """The member of the delayed set for ``payload`` on priority ``level``."""
    return b"%s%03d%s" % (os.urandom(8).hex().encode(), level, payload)


async def move_due_forever(
    options: BrokerOptions, scripts: Scripts, reconnector: Reconnector, stop: asyncio.Event
) -> None:
    """Move due messages into their streams, checking every ``delay_check_interval_s``.

    Runs the broker's ``scripts`` through its ``reconnector``. Sleeps until the next due
    time when that comes sooner. Returns once ``stop`` is set (a cancellation alone is not
    enough: a client library can swallow one that arrives just as a command completes, and
    the loop would go on) or the broker closes.
    """
    keys: ScriptKeys = [options.keys.delayed, *options.keys.streams]
    args: ScriptArgs = [MOVE_BATCH, options.max_stream_length or ""]
    refusals = AnswerLog(reconnector.server, "move due delayed messages")
    while not stop.is_set() and not reconnector.closed:
        try:
            moved, wait_ms = await reconnector.call(
                "move due delayed messages", lambda: scripts.move_due(keys, args)
            )
        except CONNECTION_ERRORS:
            return  # closed during an outage
        except ResponseError as exc:  # the same answer every check: logged once a minute
            refusals.failed(exc, "they stay delayed; trying again")
            moved, wait_ms = 0, -1
        else:
            refusals.succeeded()
        if moved >= MOVE_BATCH:
            continue
        pause = options.delay_check_interval_s
        if wait_ms >= 0:
            pause = min(pause, wait_ms / 1000)
        await asyncio.sleep(pause)
