"""The Redis keys of one queue: a stream per priority level, the delayed set, the dead letters."""

from __future__ import annotations

from dataclasses import dataclass


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
        """The keys of ``queue_name`` under ``key_prefix`` with ``priority_levels`` streams."""
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
