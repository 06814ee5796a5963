"""`PeerWatch`: whether a connecting socket has a peer now, told by its ZeroMQ monitor.

A DEALER that connects queues what it sends before any peer is there, and closing it then
waits out its linger for a peer that may never come. The socket's monitor reports each
completed handshake and each disconnection; this counts them as they happen, from the event
loop, so that the socket can be closed without linger when nobody could take what it holds.
"""

from __future__ import annotations

import asyncio
import itertools

import zmq
from zmq.utils.monitor import parse_monitor_message

from taskq_zmq.lifetime import OwnContext

_WATCHED = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
_numbers = itertools.count(1)


class PeerWatch:
    """Counts the peers of ``socket`` (a socket of ``context``) with a completed handshake."""

    def __init__(self, context: OwnContext, socket: zmq.Socket[bytes]) -> None:
        """Start the socket's monitor and read its events in the running event loop."""
        address = f"inproc://taskq-peer-watch-{id(self)}-{next(_numbers)}"
        self._socket = socket
        self.peers = 0
        socket.monitor(address, _WATCHED)
        self._events = context.socket(zmq.PAIR)
        self._events.connect(address)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._events.FD, self._read)
        # ZeroMQ signals its descriptor on a change only: what came before is read now
        self._loop.call_soon(self._read)

    def _read(self) -> None:
        """Count the handshakes and disconnections the monitor reported."""
        events = self._events
        while not events.closed and int(events.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            try:
                frames = events.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event = parse_monitor_message(frames)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.peers += 1
            elif event == zmq.EVENT_DISCONNECTED:
                self.peers = max(0, self.peers - 1)

    def close(self) -> None:
        """Read the events still queued, then stop the monitor (before the socket closes)."""
        self._read()
        self._loop.remove_reader(self._events.FD)
        self._socket.disable_monitor()
        self._events.close(linger=0)
