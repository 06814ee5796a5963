"""The worker side: takes only as many messages as it has room for, and hands back the rest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque

import zmq

from taskq.exceptions import SendTaskError
from taskq_zmq import protocol

logger = logging.getLogger("taskq.zmq")

#: Seconds between credit reports when nothing else makes one (the client's liveness signal).
HEARTBEAT = 1.0


class Intake:
    """Owns a worker's DEALER socket and a buffer of at most ``prefetch`` received messages.

    The worker tells the client how much room it has (credit); the client never sends more.
    `take` hands buffered messages to the worker's consumers; `close` sends what was never
    taken back to the client, so a graceful stop loses nothing.
    """

    def __init__(
        self, context: zmq.Context[zmq.Socket[bytes]], address: str, bind: bool, prefetch: int
    ) -> None:
        """Open the DEALER socket on ``address`` (connect, or bind) and announce ``prefetch``."""
        self.prefetch = prefetch
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, os.urandom(16))
        self.socket.setsockopt(zmq.LINGER, 2000)
        if bind:
            self.socket.bind(address)
        else:
            self.socket.connect(address)
        self.buffer: deque[bytes] = deque()
        self.closed = False
        self._session = b""
        self._last_seq = 0
        self._advertised = 0
        self._arrived = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.socket.FD, self._poll)
        self._tasks = [asyncio.create_task(self._beat())]

    async def take(self) -> bytes | None:
        """The next message; None once the intake is closed."""
        while not self.buffer:
            if self.closed:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        payload = self.buffer.popleft()
        if self.free - self._advertised >= max(1, self.prefetch // 4) or not self.buffer:
            self._report()
        return payload

    def forward(self, payload: bytes) -> None:
        """Send a new message to the client, which dispatches it to a worker with room.

        ZeroMQ queues it until the client is connected; `SendTaskError` when the worker is
        shut down or its queue to the client is full.
        """
        if self.closed:
            raise SendTaskError("the ZeroMQ worker is shut down")
        try:
            self._send_now(protocol.FORWARD + payload)
        except zmq.Again:
            raise SendTaskError("the queue to the ZeroMQ client is full") from None

    @property
    def heard_from_client(self) -> bool:
        """Whether a client has sent this worker a task (so it can take messages back)."""
        return bool(self._session)

    @property
    def free(self) -> int:
        """Buffer slots not in use."""
        return self.prefetch - len(self.buffer)

    async def close(self) -> None:
        """Take no more: tell the client, hand back what was never taken, and close."""
        if self.closed:
            return
        self.closed = True
        self._arrived.set()
        self._loop.remove_reader(self.socket.FD)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            self._send_now(protocol.BYE)
            while self.buffer:
                self._send_now(protocol.RETURN + self.buffer[0])
                self.buffer.popleft()
        except zmq.ZMQError as exc:
            if self.buffer:
                logger.error(
                    "%d messages could not be handed back (%s): no client is connected",
                    len(self.buffer),
                    exc.strerror,
                )
        self.socket.close()

    def _poll(self) -> None:
        """Move every frame the socket holds into the buffer (see `Dispatcher._poll`)."""
        arrived = False
        while int(self.socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                if len(frames) != 1:
                    raise protocol.MalformedFrame(f"{len(frames)} frames")
                session, seq, payload = protocol.parse_task(frames[0])
            except protocol.MalformedFrame as exc:
                logger.warning("Ignoring a malformed frame sent to this worker: %s", exc)
                continue
            self._session, self._last_seq = session, seq
            self.buffer.append(payload)
            arrived = True
        if arrived:
            self._arrived.set()

    async def _beat(self) -> None:
        while True:
            self._report()
            await asyncio.sleep(HEARTBEAT)

    def _report(self) -> None:
        self._advertised = self.free
        report = protocol.Credit(self.free, self._session, self._last_seq)
        with contextlib.suppress(zmq.Again):  # no client connected now: the heartbeat repeats it
            self._send_now(protocol.credit(report))

    def _send_now(self, frame: bytes) -> None:
        """Queue ``frame`` for the client without waiting; `zmq.Again` when none can take it."""
        try:
            self.socket.send(frame, flags=zmq.NOBLOCK)
        finally:
            if not self.closed:
                self._poll()  # a send can take in frames without the FD signalling them
