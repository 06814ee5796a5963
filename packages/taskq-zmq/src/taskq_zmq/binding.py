"""Binding a socket of a client or a worker, with an error that says what to do when it fails."""

from __future__ import annotations

import zmq

from taskq.exceptions import TaskiqError


def bind_or_raise(
    socket: zmq.Socket[bytes],
    address: str,
    side: str,
    error: type[TaskiqError],
    when_in_use: str,
) -> None:
    """Bind ``socket`` to ``address``; else close it and raise ``error`` naming the address.

    ``side`` ("client", "worker") names who binds; ``when_in_use`` is what the message adds when
    another process holds the address. The socket is closed without linger, so that a caller
    that tries again with a new one leaves none open.
    """
    try:
        socket.bind(address)
    except zmq.ZMQError as exc:
        socket.close(linger=0)
        reason, hint = exc.strerror, ""
        if exc.errno == zmq.EADDRINUSE:
            reason = zmq.strerror(exc.errno)  # pyzmq's strerror repeats the address
            hint = f": another process binds it{when_in_use}"
        raise error(f"the ZeroMQ {side} cannot bind {address} ({reason}){hint}") from exc
