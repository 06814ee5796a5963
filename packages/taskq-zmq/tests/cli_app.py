"""A broker whose workers bind, for the ``taskq worker`` tests (imported by the CLI, not collected).

``TASKQ_TEST_ZMQ_ADDRESS`` is the address each worker process binds.
"""

from __future__ import annotations

import os

from taskq_zmq import ZeroMQBroker

ADDRESS = os.environ["TASKQ_TEST_ZMQ_ADDRESS"]
broker = ZeroMQBroker(ADDRESS, ADDRESS, bind="worker")
