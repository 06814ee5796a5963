"""The ZeroMQ broker as the conformance suite tests it: one port per test run, on loopback.

The port comes from ``TASKQ_CONFORMANCE_ZMQ_PORT``; the first call picks a free one and sets
the variable, so the process the suite spawns for the cross-process check uses the same port.
"""

from __future__ import annotations

import os

from taskq.testing import free_port
from taskq_zmq.broker import ZeroMQBroker

_PORT_VARIABLE = "TASKQ_CONFORMANCE_ZMQ_PORT"


def make_broker() -> ZeroMQBroker:
    """A broker whose client binds, and whose workers connect to, one loopback port."""
    port = os.environ.get(_PORT_VARIABLE)
    if port is None:
        port = os.environ[_PORT_VARIABLE] = str(free_port())
    address = f"tcp://127.0.0.1:{port}"
    return ZeroMQBroker(zmq_pub_host=address, zmq_sub_host=address)
