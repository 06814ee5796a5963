"""The messages the client (ROUTER) and the workers (DEALER) exchange, one frame each.

Client to worker: ``TASK session seq payload`` — ``seq`` counts the tasks this client session
sent to that worker. Worker to client: ``CREDIT free session last_seq`` — how many more messages
it can buffer, after the last task it received (so the client subtracts what is still in
flight); ``RETURN payload`` — a message handed back at shutdown; ``FORWARD payload`` — a new
message a task sent from the worker, for the client to dispatch; ``BYE`` — it takes no more.
Each message is one frame (a kind byte, then fixed-size fields), because every extra frame costs
as much as a small payload.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

TASK = b"T"
CREDIT = b"C"
RETURN = b"R"
FORWARD = b"F"
BYE = b"B"

SESSION_SIZE = 16
_TASK_HEADER = struct.Struct(f"!c{SESSION_SIZE}sQ")
_CREDIT = struct.Struct(f"!cI{SESSION_SIZE}sQ")


class MalformedFrame(ValueError):
    """A frame that is not one of the protocol's messages."""


@dataclass(frozen=True, slots=True)
class Credit:
    """A worker's report of its free buffer slots."""

    free: int
    session: bytes
    last_seq: int


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
    """A credit report for the client."""
    return _CREDIT.pack(
        CREDIT, report.free, report.session.ljust(SESSION_SIZE, b"\0"), report.last_seq
    )


def parse_credit(frame: bytes) -> Credit:
    """The credit report in ``frame``; `MalformedFrame` if it is not one."""
    if len(frame) != _CREDIT.size or frame[:1] != CREDIT:
        raise MalformedFrame(f"not a credit report: {frame[:20]!r}")
    _, free, session, last_seq = _CREDIT.unpack(frame)
    return Credit(free, session, last_seq)
