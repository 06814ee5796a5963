"""A broker's own ZeroMQ context, closed at shutdown or, if it never comes, by the collector.

Left to pyzmq, a broker dropped without ``shutdown()`` hangs its process: the context and its
sockets become garbage together, the collector clears the context's weak references to its
sockets before pyzmq's finalizer runs, and that finalizer then waits in ``zmq_ctx_term``
forever for sockets it can no longer see. `OwnContext` holds its sockets strongly instead, and
its own finalizer (a weak-reference callback, which the collector runs before any ``__del__``)
closes them without linger and terminates the context.
"""

from __future__ import annotations

import weakref

import zmq

from taskq_zmq.security import CurveKeys, Gatekeeper


class OwnContext:
    """A new ZeroMQ context (never pyzmq's global instance), its sockets and its authenticator.

    Whatever uses one of its sockets keeps a reference to it (the broker, its dispatcher, its
    intake), so it stays open while any of them can still use a socket, even after the broker
    itself is dropped. When all of them are dropped without `close` (a broker never shut
    down), a finalizer that holds none of them does what `close` does: it closes the sockets
    still open without linger (what they had not sent is lost), stops the authenticator and
    terminates the context.

    At interpreter exit the finalizer does not run: the process ends with the context, and
    pyzmq's own finalizers stand down once its exit hook has run.
    """

    def __init__(self) -> None:
        """Create the context; nothing is bound or connected yet."""
        self._held = _Held(zmq.Context())
        self._finalizer = weakref.finalize(self, self._held.close)
        # at exit another thread may still be using the sockets: closing them from the exit
        # hook could crash libzmq, and the process is ending anyway
        self._finalizer.atexit = False

    @property
    def closed(self) -> bool:
        """Whether the context is terminated."""
        return self._held.context.closed

    def socket(self, socket_type: int) -> zmq.Socket[bytes]:
        """A new socket of the context, which the finalizer closes if it is still open then.

        Every socket of the context is made here, whenever it is made (a second side, a
        monitor's PAIR socket): one made on the ZeroMQ context directly is out of the
        finalizer's reach, and terminating the context would wait for it forever.
        """
        self._held.sockets = [socket for socket in self._held.sockets if not socket.closed]
        socket = self._held.context.socket(socket_type)
        self._held.sockets.append(socket)
        return socket

    def guard(self, keys: CurveKeys) -> None:
        """Start the authenticator (once) before a CURVE socket binds: see `Gatekeeper`."""
        if self._held.gatekeeper is None:
            self._held.gatekeeper = Gatekeeper(self._held.context, keys)

    def close(self) -> None:
        """Close the sockets still open without linger, stop the authenticator, terminate.

        Sockets already closed keep their linger: terminating waits while they still send. A
        socket still open is one no part owns any more (say, one that failed to bind).
        """
        self._finalizer()


class _Held:
    """What `OwnContext.close` needs: its finalizer holds this, never the `OwnContext` itself."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        self.context = context
        self.sockets: list[zmq.Socket[bytes]] = []
        self.gatekeeper: Gatekeeper | None = None

    def close(self) -> None:
        sockets, self.sockets = self.sockets, []
        for socket in sockets:
            if not socket.closed:
                socket.close(linger=0)
        # the authenticator's sockets belong to its thread: it closes them as it stops, and
        # if it cannot be stopped, terminating would wait for them forever
        gatekeeper, self.gatekeeper = self.gatekeeper, None
        if gatekeeper is not None:
            gatekeeper.stop()
        self.context.term()
