"""Loopback addresses on free ports, so tests never collide; no ZeroMQ context left open."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator

import pytest
import zmq


@pytest.fixture
def address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def open_contexts() -> list[zmq.Context[zmq.Socket[bytes]]]:
    return [o for o in gc.get_objects() if isinstance(o, zmq.Context) and not o.closed]


@pytest.fixture(autouse=True)
def no_context_left_open() -> Iterator[None]:
    """Close the ZeroMQ contexts a test left open (one that failed before its shutdown).

    Left to the garbage collector, a context and its sockets become garbage together, the
    collector clears the context's weak references to its sockets before pyzmq's finalizer
    destroys it, and that finalizer then waits in ``zmq_ctx_term`` for sockets it cannot see:
    one failed test would hang the whole run at its next collection.
    """
    before = {id(context) for context in open_contexts()}
    yield
    for context in open_contexts():
        if id(context) not in before:
            context.destroy(linger=0)
