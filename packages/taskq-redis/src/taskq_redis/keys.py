"""The Redis keys of one queue: a stream per priority level, the delayed set, the dead letters."""

from __future__ import annotations

from dataclasses import dataclass

from taskq.toolkit import check_count

#: The most priority levels (streams) a queue has.
MAX_PRIORITY_LEVELS = 100
#: The names of other stores' keys under a prefix, each followed by a name of the caller's:
#: ``{prefix}:cancelled:{task_id}`` (`RedisCancellationStore`), ``{prefix}:unique:{key}``
#: (`RedisUniqueStore`), ``{prefix}:result:{task_id}`` and ``{prefix}:progress:{task_id}`` (the
#: Redis result backend). A queue of such a name would share keys with them under the same
#: prefix: cancelling task ``p0`` would overwrite the queue's stream ``...:cancelled:p0``.
RESERVED_QUEUE_NAMES = ("cancelled", "unique", "result", "progress")
#: The event store's keys under its default prefix ``{prefix}:events`` end with a name of the
#: caller's (``...:events:name:{task_name}``): no queue name may start with ``events:``.
RESERVED_QUEUE_PREFIXES = ("events:",)


@dataclass(frozen=True)
class QueueKeys:
    """Names of every key a queue uses, all starting with ``{key_prefix}:{queue_name}:``.

    ``streams[level]`` is the stream of priority ``level`` (0 is the lowest), ``delayed`` the
    sorted set of messages waiting for their due time, ``dead_letters`` the stream of messages
    taken out of circulation. Lua scripts touch several of them at once, so on Redis Cluster
    give ``key_prefix`` a hash tag (``"{taskq}"``) to keep them in one slot.
    """

    streams: tuple[str, ...]
    delayed: str
    dead_letters: str

    @classmethod
    def of(
        cls,
        key_prefix: str,
        queue_name: str,
        priority_levels: int,
        dead_letter_stream: str | None = None,
    ) -> QueueKeys:
        """The keys of ``queue_name`` under ``key_prefix`` with ``priority_levels`` streams.

        Raises:
            ValueError: ``queue_name`` would share keys with another store (see
                `RESERVED_QUEUE_NAMES`), or ``priority_levels`` is not an integer from 1 to
                `MAX_PRIORITY_LEVELS`.
        """
        check_queue_name(queue_name)
        check_count("priority_levels", priority_levels, maximum=MAX_PRIORITY_LEVELS)
        base = f"{key_prefix}:{queue_name}"
        return cls(
            streams=tuple(f"{base}:p{level}" for level in range(priority_levels)),
            delayed=f"{base}:delayed",
            dead_letters=dead_letter_stream or f"{base}:dead-letters",
        )

    @property
    def highest_first(self) -> tuple[str, ...]:
        """The streams from the highest priority level down, the order workers read them in."""
        return self.streams[::-1]


def check_queue_name(queue_name: str) -> None:
    """Refuse a queue name whose keys other stores under the same prefix use too.

    Raises:
        ValueError: ``queue_name`` is, or starts with, a name of `RESERVED_QUEUE_NAMES` (and
            ``:``), or starts with one of `RESERVED_QUEUE_PREFIXES`.
    """
    first = queue_name.split(":", 1)[0]
    if first in RESERVED_QUEUE_NAMES or queue_name.startswith(RESERVED_QUEUE_PREFIXES):
        raise ValueError(
            f"queue_name {queue_name!r} would share Redis keys with the cancellations, unique "
            "keys, results or events kept under the same key_prefix: give another name (not "
            f"{', '.join(RESERVED_QUEUE_NAMES)}, nor one starting with such a name and ':' "
            "or with 'events:')"
        )
