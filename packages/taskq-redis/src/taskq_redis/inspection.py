"""Queue inspection for the Redis broker: counts by state from the streams, set and group."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from taskq.inspection import ConsumerInfo, QueueInspection
from taskq_redis.scripts import HANDED_BACK, RELEASED

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from taskq_redis.options import BrokerOptions

#: Consumers of the group that no worker reads as: what they hold waits for a worker.
_WAITING_HOLDERS = (RELEASED, HANDED_BACK)


async def inspect_queue(redis: aioredis.Redis, options: BrokerOptions) -> QueueInspection:
    """Count ``options``' queue by state in one round trip.

    A stream holds what no worker acknowledged yet: entries pending in the consumer group are
    in flight, the rest are ready; entries released or handed back (held by no worker) count
    as ready again. Delayed messages are the delayed set, dead ones the dead-letter stream.
    """
    keys, group = options.keys, options.consumer_group_name
    async with redis.pipeline(transaction=False) as pipe:
        for stream in keys.streams:
            pipe.xlen(stream)
            pipe.xinfo_consumers(stream, group)
        pipe.zcard(keys.delayed)
        pipe.xlen(keys.dead_letters)
        replies = await pipe.execute(raise_on_error=False)
    *per_stream, delayed, dead = replies
    stored = in_flight = 0
    holders: dict[str, int] = {}
    for length, consumers in zip(per_stream[::2], per_stream[1::2], strict=True):
        stored += int(length)
        for name, pending in _consumers(consumers):
            if name not in _WAITING_HOLDERS:
                holders[name] = holders.get(name, 0) + pending
                in_flight += pending
    return QueueInspection(
        queue=options.queue_name,
        ready=stored - in_flight,
        delayed=int(delayed),
        in_flight=in_flight,
        dead=int(dead),
        consumers=tuple(ConsumerInfo(name, count) for name, count in sorted(holders.items())),
    )


def _consumers(reply: Any) -> list[tuple[str, int]]:
    """``(name, pending)`` of an ``XINFO CONSUMERS`` reply; none when the group is missing."""
    if isinstance(reply, ResponseError):
        if "NOGROUP" in str(reply) or "no such key" in str(reply):
            return []
        raise reply
    found = []
    for consumer in reply:
        name = consumer["name"]
        found.append(
            (name.decode() if isinstance(name, bytes) else str(name), int(consumer["pending"]))
        )
    return found
