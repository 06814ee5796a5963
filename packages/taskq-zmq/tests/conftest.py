"""Loopback addresses on free ports, so tests never collide; no ZeroMQ context left open."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import zmq

from taskq.testing import free_port
from taskq_zmq.lifetime import OwnContext


@pytest.fixture
def address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def open_contexts() -> list[zmq.Context[zmq.Socket[bytes]]]:
    return [o for o in gc.get_objects() if isinstance(o, zmq.Context) and not o.closed]


def open_own_contexts() -> list[OwnContext]:
    return [o for o in gc.get_objects() if isinstance(o, OwnContext) and not o.closed]


@pytest.fixture(autouse=True)
def no_context_left_open() -> Iterator[None]:
    """Close the ZeroMQ contexts a test left open (one that failed before its shutdown).

    Left to the garbage collector, a raw context (the tests' fake peers use them) and its
    sockets become garbage together, the collector clears the context's weak references to
    its sockets before pyzmq's finalizer destroys it, and that finalizer then waits in
    ``zmq_ctx_term`` for sockets it cannot see: one failed test would hang the whole run at
    its next collection. A broker's own context is safe from that (`taskq_zmq.lifetime`), but
    a failed test's traceback keeps it, with its bound address and its authenticator thread,
    until pytest lets it go: it is closed here its own way first (destroying it as a raw
    context would close its authenticator's sockets under that thread).
    """
    before = {id(context) for context in open_contexts()}
    owned_before = {id(context) for context in open_own_contexts()}
    yield
    for own in open_own_contexts():
        if id(own) not in owned_before:
            own.close()
    for context in open_contexts():
        if id(context) not in before:
            context.destroy(linger=0)
