"""Starts ZeroMQ brokers and drops them without shutdown (run as a script, not collected).

``python dropped_app.py CASE ADDRESS [KEYS_DIR]``: each case starts brokers in ``asyncio.run``
and returns without shutting them down (``in-use`` shuts down one that failed to start). Then
it prints ``collecting``, runs the garbage collector, prints ``collected`` and checks that
``ADDRESS`` can be bound again and that no thread but the main one is left; ``at-exit`` keeps
its broker in a global and just exits.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from pathlib import Path
from typing import Literal

import zmq

from taskq.exceptions import SendTaskError
from taskq.message import BrokerMessage
from taskq_zmq import ZeroMQBroker

CASE, ADDRESS = sys.argv[1], sys.argv[2]
kept: list[ZeroMQBroker] = []


async def client() -> None:
    await ZeroMQBroker(ADDRESS, ADDRESS).startup()


async def worker() -> None:
    broker = ZeroMQBroker(ADDRESS, ADDRESS, bind="worker")
    broker.is_worker_process = True
    await broker.startup()


async def connected(bind: Literal["client", "worker"]) -> None:
    """A client and a worker that exchanged a task; the worker holds a second one, untaken."""
    sender = ZeroMQBroker(ADDRESS, ADDRESS, bind=bind)
    receiver = ZeroMQBroker(ADDRESS, ADDRESS, bind=bind, prefetch=1)
    receiver.is_worker_process = True
    await receiver.startup()
    await sender.startup()
    await sender.kick(BrokerMessage("t0", "demo", b"0"))
    assert await anext(receiver.listen()) == b"0"
    await sender.kick(BrokerMessage("t1", "demo", b"1"))


async def curve() -> None:
    """A client that binds with CURVE: its authenticator runs in a thread of its own."""
    keys = Path(sys.argv[3])
    await ZeroMQBroker(
        ADDRESS,
        ADDRESS,
        curve_secret_key_file=keys / "client.key_secret",
        curve_allowed_keys_dir=keys / "allowed",
    ).startup()


async def in_use() -> None:
    """A broker that fails to bind an address in use still shuts down (then the first)."""
    first = ZeroMQBroker(ADDRESS, ADDRESS)
    await first.startup()
    second = ZeroMQBroker(ADDRESS, ADDRESS)
    try:
        await second.startup()
    except SendTaskError as exc:
        if "already in use" not in str(exc):
            raise
    else:
        raise AssertionError("the second broker bound an address in use")
    await second.shutdown()
    await first.shutdown()


async def at_exit() -> None:
    kept.append(ZeroMQBroker(ADDRESS, ADDRESS))
    await kept[0].startup()


CASES = {
    "client": client,
    "worker": worker,
    "client-binds": lambda: connected("client"),
    "worker-binds": lambda: connected("worker"),
    "curve": curve,
    "in-use": in_use,
    "at-exit": at_exit,
}


def address_is_free() -> bool:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        with context.socket(zmq.ROUTER) as probe:
            probe.bind(ADDRESS)
    except zmq.ZMQError:
        return False
    finally:
        context.term()
    return True


if __name__ == "__main__":
    gc.disable()  # one collection, where this program makes it
    asyncio.run(CASES[CASE]())
    if CASE != "at-exit":
        print("collecting", flush=True)
        gc.collect()
        print("collected", flush=True)
        assert address_is_free(), "a socket of the dropped brokers is still open"
        assert threading.active_count() == 1, threading.enumerate()
    print("done", flush=True)
