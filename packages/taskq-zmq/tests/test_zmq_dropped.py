"""A broker dropped without shutdown: the garbage collector closes it instead of hanging."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import zmq

from taskq.message import BrokerMessage
from taskq_zmq import ZeroMQBroker
from taskq_zmq.lifetime import OwnContext
from taskq_zmq.security import create_keys

APP = Path(__file__).resolve().parent / "dropped_app.py"
#: Seconds after which the program is taken for hung (it needs about one).
HANG_S = 60


def run_app(case: str, address: str, *args: str) -> str:
    try:
        finished = subprocess.run(
            [sys.executable, str(APP), case, address, *args],
            capture_output=True,
            text=True,
            timeout=HANG_S,
        )
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"{case}: still running after {HANG_S} s, at {hung.stdout!r}")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return finished.stdout


@pytest.mark.parametrize("case", ["client", "worker", "client-binds", "worker-binds"])
def test_collecting_brokers_never_shut_down_closes_their_sockets(address, case):
    """Started brokers (client, worker, or both with tasks in flight) are dropped: the
    collection returns, the bound address is free again and no thread is left."""
    assert run_app(case, address).split() == ["collecting", "collected", "done"]


def test_collecting_a_curve_broker_stops_its_authenticator(address, tmp_path):
    create_keys(tmp_path, "client")
    create_keys(tmp_path / "allowed", "worker")
    assert run_app("curve", address, str(tmp_path)).split() == ["collecting", "collected", "done"]


def test_a_broker_that_failed_to_bind_shuts_down(address):
    """Its socket, which no part owns, is closed rather than waited for."""
    assert run_app("in-use", address).split() == ["collecting", "collected", "done"]


def test_a_process_exits_with_a_broker_never_shut_down(address):
    assert run_app("at-exit", address).split() == ["done"]


def test_a_dropped_context_closes_every_socket_it_made():
    own = OwnContext()
    own.socket(zmq.ROUTER).close()
    later = [own.socket(zmq.DEALER), own.socket(zmq.PAIR)]  # made after one was closed
    for socket in later:
        socket.connect("tcp://127.0.0.1:9")  # no peer: what they send stays queued
        socket.send(b"never delivered", zmq.NOBLOCK)
    dropped = weakref.ref(own)
    del own
    gc.collect()
    assert dropped() is None
    assert all(socket.closed for socket in later)
    assert later[0].context.closed


async def test_a_broker_dropped_while_its_loop_runs_keeps_serving_its_workers(address):
    """Its dispatcher, which the loop still runs, keeps the sockets open until it stops."""
    client = ZeroMQBroker(address, address)
    worker = ZeroMQBroker(address, address)
    worker.is_worker_process = True
    await client.startup()
    await worker.startup()
    await client.kick(BrokerMessage("t0", "demo", b"0"))
    dispatcher = weakref.ref(client._dispatcher)  # type: ignore[arg-type]
    dropped = weakref.ref(client)
    del client
    gc.collect()
    assert dropped() is None
    running = dispatcher()
    assert running is not None
    assert not running.socket.closed
    assert await anext(worker.listen()) == b"0"
    await running.close()
    running.context.close()
    await worker.shutdown()
