"""Tags on what the broker checks send, so that a check knows a message it did not send.

The queue a factory reaches may hold messages from before the check: an earlier run that was
stopped (Ctrl-C, ``kill -9``, a check's deadline) left what it had sent, an earlier check of
this run failed before it took all of its own, or something else uses the queue. A check that
took one of those for its own would fail with a misleading error (another payload, another
count, a message "delivered again").

So a run draws a nonce, each check of the run gets a number, and every message body a check
sends carries the tag ``tqc:<nonce>:<number>:`` (the bytes round-trip checks carry it in the
middle of their data, the empty one none). A check takes only messages carrying its own tag;
any other it receives is set aside: acknowledged, so that it does not come back, left out of
what the check compares, and recorded. The run's summary reports the set-aside messages and
where they came from; a check that fails names how many it set aside.

Nothing here imports taskq: the plugin reads the record at the end of the run.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

#: A tag as it appears in a message body: the run's nonce and the check's number.
TAG = re.compile(rb"tqc:([0-9a-f]{12}):([0-9]+):")
#: Bytes of a set-aside message the report shows.
PREVIEW = 40
#: Where a message may come from, as the report groups them.
EARLIER_RUN = "from earlier runs"
EARLIER_CHECK = "sent by other checks of this run"
UNTAGGED = "without the suite's tag (not sent by this version of the suite)"


@dataclass(frozen=True)
class SetAside:
    """A message a check received but did not send."""

    #: The check that received it (its node id).
    check: str
    #: Where it came from: `EARLIER_RUN`, `EARLIER_CHECK` or `UNTAGGED`.
    origin: str
    #: The earlier run's nonce or the other check's node id ("" for `UNTAGGED`).
    source: str
    #: Its first bytes.
    preview: bytes


class RunTags:
    """The tags of one run: its nonce, the current check, and what the checks set aside."""

    def __init__(self) -> None:
        self.nonce = uuid.uuid4().hex[:12]
        #: The node ids of the checks that began, in order; a check's number is its index.
        self.checks: list[str] = ["(before the first check)"]
        self.set_aside: list[SetAside] = []

    def begin(self, check: str) -> None:
        """Start tagging for ``check`` (a node id): it gets the next number."""
        self.checks.append(check)

    @property
    def current(self) -> bytes:
        """The tag of the current check's messages."""
        return b"tqc:%s:%d:" % (self.nonce.encode(), len(self.checks) - 1)

    def tag(self, body: bytes = b"") -> bytes:
        """``body`` behind the current check's tag."""
        return self.current + body

    def body(self, data: bytes) -> bytes:
        """What `tag` put behind the tag of ``data``."""
        found = TAG.match(data)
        return data[found.end() :] if found else data

    def is_mine(self, data: bytes) -> bool:
        """Whether ``data`` carries the current check's tag (anywhere in it)."""
        return self.current in data

    def origin(self, data: bytes) -> tuple[str, str]:
        """Where ``data``, a message the current check did not send, comes from, and whose."""
        found = TAG.search(data)
        if found is None:
            return UNTAGGED, ""
        nonce, number = found.group(1).decode(), int(found.group(2))
        if nonce != self.nonce:
            return EARLIER_RUN, nonce
        if number < len(self.checks):
            return EARLIER_CHECK, self.checks[number]
        return EARLIER_CHECK, f"check number {number}"

    def record(self, data: bytes) -> None:
        """Record that the current check set ``data`` aside (unless it carries its tag)."""
        if not self.is_mine(data):
            origin, source = self.origin(data)
            entry = SetAside(self.checks[-1], origin, source, data[:PREVIEW])
            self.set_aside.append(entry)

    def note(self) -> str:
        """What the current check set aside, to end its failure message ("" if nothing)."""
        mine = [entry for entry in self.set_aside if entry.check == self.checks[-1]]
        if not mine:
            return ""
        return (
            f" ({len(mine)} message(s) this check did not send were received meanwhile and "
            f"set aside, the first {mine[0].origin}: {mine[0].preview!r})"
        )

    def report(self) -> list[str]:
        """The summary lines of what the run set aside, grouped by origin (none: no lines)."""
        if not self.set_aside:
            return []
        groups: dict[str, list[SetAside]] = {}
        for entry in self.set_aside:
            groups.setdefault(entry.origin, []).append(entry)
        lines = [
            f"{len(self.set_aside)} message(s) in the queue were not sent by the check that "
            "received them: each was taken off the queue (acknowledged, where the broker has "
            "acks) and left out of the check"
        ]
        for origin, entries in groups.items():
            sources = list(dict.fromkeys(entry.source for entry in entries if entry.source))
            whose = f" ({', '.join(sources[:3])}{', ...' if len(sources) > 3 else ''})"
            first = entries[0]
            lines.append(
                f"  {len(entries)} {origin}{whose if sources else ''}; the first received by "
                f"{first.check}: {first.preview!r}"
            )
        return lines

    def as_json(self) -> dict[str, int]:
        """How many messages the run set aside, by origin."""
        counts: dict[str, int] = {}
        for entry in self.set_aside:
            counts[entry.origin] = counts.get(entry.origin, 0) + 1
        return counts


#: The tags of this run (one per process: a process the suite starts gets the tag it must use).
TAGS = RunTags()
