"""The messages the client and the workers exchange, one frame each, and their limits.

Client to worker: ``TASK session seq payload`` — ``seq`` counts the tasks this client session
sent to that worker; ``HELLO session`` — a client announcing itself to a worker that binds
(``bind="worker"``), repeated as its heartbeat; ``BYE`` — the client leaves. Worker to client:
``CREDIT free session last_seq held`` — how many more messages it can take from that client
after the last task it received from it (so the client subtracts what is still in flight), and
how many of that client's messages it holds unstarted; ``RETURN payload`` — a message handed back
(at shutdown, or one sent beyond its credit); ``FORWARD payload`` — a new message a task sent
from the worker, for the client to dispatch; ``BYE session last_seq`` — it takes no more, and the
last task it took from that client session was ``last_seq``: tasks numbered beyond it never
reached it (they were on their way when it stopped reading), so the client sends them to another
worker. A worker hands back the tasks it took, after its ``BYE``.

Each message is one frame (a kind byte, then fixed-size fields), because every extra frame costs
as much as a small payload. So is a batch, which arrives whole or not at all: ``TASKS session
first_seq count lengths payloads`` (client to worker: ``count`` tasks numbered ``first_seq``
onwards; ``lengths`` are ``count`` 4-byte sizes, then the payloads back to back) and ``FORWARDS
count lengths payloads`` (worker to client).

Limits: a worker's buffer, and so the credit it may report, is at most `MAX_CREDIT` messages.
A client caps every report at that value, never counts a ``last_seq`` beyond what it sent, and
ignores frames that fit none of these shapes; a worker hands back a task that arrives when its
buffer is full instead of taking it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

TASK = b"T"
HELLO = b"H"
CREDIT = b"C"
RETURN = b"R"
FORWARD = b"F"
BYE = b"B"
TASKS = b"t"
FORWARDS = b"f"

#: The largest prefetch (buffered messages) a worker may have, and so the largest credit a
#: client accepts from one worker.
MAX_CREDIT = 65_535
SESSION_SIZE = 16
_TASK_HEADER = struct.Struct(f"!c{SESSION_SIZE}sQ")
_CREDIT = struct.Struct(f"!cI{SESSION_SIZE}sQI")
_HELLO = struct.Struct(f"!c{SESSION_SIZE}s")
_GOODBYE = struct.Struct(f"!c{SESSION_SIZE}sQ")
_TASKS_HEADER = struct.Struct(f"!c{SESSION_SIZE}sQI")
_FORWARDS_HEADER = struct.Struct("!cI")


class MalformedFrame(ValueError):
    """A frame that is not one of the protocol's messages."""


@dataclass(frozen=True, slots=True)
class Credit:
    """A worker's report to one client session: room, last task received, messages held."""

    free: int
    session: bytes
    last_seq: int
    held: int = 0


def task(session: bytes, seq: int, payload: bytes) -> bytes:
    """A task for a worker."""
    return _TASK_HEADER.pack(TASK, session, seq) + payload


def parse_task(frame: bytes) -> tuple[bytes, int, bytes]:
    """``(session, seq, payload)`` of a task; `MalformedFrame` if it is not one."""
    if len(frame) < _TASK_HEADER.size or frame[:1] != TASK:
        raise MalformedFrame(f"not a task: {frame[:20]!r}")
    _, session, seq = _TASK_HEADER.unpack_from(frame)
    return session, seq, frame[_TASK_HEADER.size :]


def credit(report: Credit) -> bytes:
    """A credit report for a client (``free`` and ``held`` clamped to ``0..MAX_CREDIT``)."""
    return _CREDIT.pack(
        CREDIT,
        min(max(report.free, 0), MAX_CREDIT),
        report.session.ljust(SESSION_SIZE, b"\0")[:SESSION_SIZE],
        report.last_seq,
        min(max(report.held, 0), MAX_CREDIT),
    )


def parse_credit(frame: bytes) -> Credit:
    """The credit report in ``frame``; `MalformedFrame` if it is not one or exceeds the limits."""
    if len(frame) != _CREDIT.size or frame[:1] != CREDIT:
        raise MalformedFrame(f"not a credit report: {frame[:20]!r}")
    _, free, session, last_seq, held = _CREDIT.unpack(frame)
    if free > MAX_CREDIT or held > MAX_CREDIT:
        raise MalformedFrame(f"a credit report beyond the limit of {MAX_CREDIT}: {free}, {held}")
    return Credit(free, session, last_seq, held)


def hello(session: bytes) -> bytes:
    """A client's greeting (and heartbeat) to a worker that binds."""
    return _HELLO.pack(HELLO, session)


def parse_hello(frame: bytes) -> bytes:
    """The session of a greeting; `MalformedFrame` if it is not one."""
    if len(frame) != _HELLO.size or frame[:1] != HELLO:
        raise MalformedFrame(f"not a greeting: {frame[:20]!r}")
    return bytes(_HELLO.unpack(frame)[1])


def goodbye(session: bytes, last_seq: int) -> bytes:
    """A worker's goodbye to a client: it takes no more; ``last_seq`` is its last task from it."""
    return _GOODBYE.pack(BYE, session.ljust(SESSION_SIZE, b"\0")[:SESSION_SIZE], last_seq)


def parse_goodbye(frame: bytes) -> tuple[bytes, int]:
    """``(session, last_seq)`` of a worker's goodbye; `MalformedFrame` if it is not one."""
    if len(frame) != _GOODBYE.size or frame[:1] != BYE:
        raise MalformedFrame(f"not a goodbye: {frame[:20]!r}")
    _, session, last_seq = _GOODBYE.unpack(frame)
    return bytes(session), last_seq


def tasks(session: bytes, first_seq: int, payloads: list[bytes]) -> bytes:
    """A batch of tasks for one worker, numbered from ``first_seq``."""
    return _batch(_TASKS_HEADER.pack(TASKS, session, first_seq, len(payloads)), payloads)


def parse_tasks(frame: bytes) -> tuple[bytes, int, list[bytes]]:
    """``(session, first_seq, payloads)`` of a batch of tasks; `MalformedFrame` if not one."""
    if len(frame) < _TASKS_HEADER.size or frame[:1] != TASKS:
        raise MalformedFrame(f"not a batch of tasks: {frame[:20]!r}")
    _, session, first_seq, count = _TASKS_HEADER.unpack_from(frame)
    return session, first_seq, _payloads(frame, _TASKS_HEADER.size, count)


def forwards(payloads: list[bytes]) -> bytes:
    """A batch of new messages for a client."""
    return _batch(_FORWARDS_HEADER.pack(FORWARDS, len(payloads)), payloads)


def parse_forwards(frame: bytes) -> list[bytes]:
    """The payloads of a batch of forwarded messages; `MalformedFrame` if it is not one."""
    if len(frame) < _FORWARDS_HEADER.size or frame[:1] != FORWARDS:
        raise MalformedFrame(f"not a batch of messages: {frame[:20]!r}")
    count = _FORWARDS_HEADER.unpack_from(frame)[1]
    return _payloads(frame, _FORWARDS_HEADER.size, count)


def _batch(header: bytes, payloads: list[bytes]) -> bytes:
    """``header``, the payloads' lengths (4 bytes each), then the payloads."""
    return b"".join([header, struct.pack(f"!{len(payloads)}I", *map(len, payloads)), *payloads])


def _payloads(frame: bytes, offset: int, count: int) -> list[bytes]:
    """The ``count`` payloads of a batch whose lengths start at ``offset``."""
    start = offset + 4 * count
    if not count or start > len(frame):
        raise MalformedFrame(f"a batch of {count} messages in {len(frame)} bytes")
    lengths = struct.unpack_from(f"!{count}I", frame, offset)
    if start + sum(lengths) != len(frame):
        raise MalformedFrame(f"a batch of {count} messages whose lengths do not add up")
    payloads = []
    for length in lengths:
        payloads.append(frame[start : start + length])
        start += length
    return payloads
