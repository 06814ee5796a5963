"""A fast path around pyzmq's asyncio sockets: send without waiting when the socket has room."""

from __future__ import annotations

import zmq
import zmq.asyncio


async def send(socket: zmq.asyncio.Socket, frames: list[bytes]) -> None:
    """Send ``frames``: at once when the socket can take them, else wait until it can.

    The non-blocking attempt completes without a trip through the event loop, which is most of
    the cost of a small message.
    """
    try:
        await socket.send_multipart(frames, flags=zmq.NOBLOCK)
    except zmq.Again:
        await socket.send_multipart(frames)
