"""The client side: sends each message to one worker with room for it, or waits for one."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from dataclasses import dataclass

import zmq

from taskq.exceptions import SendTaskError
from taskq_zmq import protocol

logger = logging.getLogger("taskq.zmq")

#: Seconds without a credit report after which a worker is taken for gone.
PEER_TIMEOUT = 5.0
#: Seconds a message may wait for a worker before the wait is logged (it goes on waiting).
WAIT_WARNING = 5.0


@dataclass
class Peer:
    """What the client knows of one worker."""

    sent: int = 0
    credits: int = 0
    last_seen: float = 0.0


class Dispatcher:
    """The client's ROUTER socket: tracks workers' credits, sends, waits when none has room.

    A message that finds no credit waits in an outbox (its ``kick`` waits with it); messages a
    worker hands back at shutdown go to the front of the outbox.
    """

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], address: str, bind: bool) -> None:
        """Open the ROUTER socket on ``address`` (bind, or connect)."""
        self.session = os.urandom(16)
        # a plain socket: the event loop watches its FD, and sends never wait (credit-bounded)
        self.socket = context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.LINGER, 2000)
        if bind:
            self.socket.bind(address)
        else:
            self.socket.connect(address)
        self.peers: dict[bytes, Peer] = {}
        self.outbox: deque[tuple[bytes, asyncio.Future[None] | None]] = deque()
        self.closed = False
        self._polling = False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.socket.FD, self._poll)
        self._poll()

    async def send(self, payload: bytes) -> None:
        """Send ``payload`` to a worker with room, waiting (backpressure) until there is one."""
        if self.closed:
            raise SendTaskError("the ZeroMQ broker is shut down")
        if not self.outbox and self._send_to_any(payload):
            self._poll()
            return
        sent = asyncio.get_running_loop().create_future()
        self.outbox.append((payload, sent))
        try:
            await asyncio.wait_for(asyncio.shield(sent), WAIT_WARNING)
        except asyncio.TimeoutError:
            logger.warning(
                "No worker has room for a message for %.0f s; still waiting", WAIT_WARNING
            )
            await sent

    async def close(self) -> None:
        """Stop: messages still waiting fail their ``kick`` with `SendTaskError`."""
        self.closed = True
        self._loop.remove_reader(self.socket.FD)
        error = SendTaskError("the ZeroMQ broker shut down before a worker took the message")
        for payload, sent in self.outbox:
            if sent is not None and not sent.done():
                sent.set_exception(error)
            elif sent is None:
                logger.error(
                    "Shutdown dropped a message a worker had handed back or sent (%d bytes)",
                    len(payload),
                )
        self.outbox.clear()
        self.socket.close()

    def _poll(self) -> None:
        """Take every frame the socket holds and send what they make room for.

        The socket's FD signals edge-triggered: it is armed again only once ``EVENTS`` shows
        no input, so this runs after every send as well as when the FD is readable.
        """
        if self._polling or self.closed:
            return
        self._polling = True
        try:
            while int(self.socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                try:
                    frames = self.socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if len(frames) != 2:
                    logger.warning("Ignoring a message of %d frames from a worker", len(frames))
                    continue
                try:
                    self._on_frame(frames[0], frames[1])
                except protocol.MalformedFrame as exc:
                    logger.warning("Ignoring a malformed frame from a worker: %s", exc)
                    continue
                self._drain()
        finally:
            self._polling = False

    def _on_frame(self, identity: bytes, frame: bytes) -> None:
        kind = frame[:1]
        if kind == protocol.CREDIT:
            credit = protocol.parse_credit(frame)
            peer = self.peers.setdefault(identity, Peer())
            seen = credit.last_seq if credit.session == self.session else 0
            peer.credits = credit.free - (peer.sent - seen)
            peer.last_seen = time.monotonic()
        elif kind == protocol.RETURN:
            self.outbox.appendleft((frame[1:], None))
        elif kind == protocol.FORWARD:
            self.outbox.append((frame[1:], None))
        elif kind == protocol.BYE:
            self.peers.pop(identity, None)
        else:
            raise protocol.MalformedFrame(f"unknown kind {kind[:10]!r}")

    def _drain(self) -> None:
        while self.outbox:
            payload, sent = self.outbox[0]
            if not self._send_to_any(payload):
                return
            self.outbox.popleft()
            if sent is not None and not sent.done():
                sent.set_result(None)

    def _send_to_any(self, payload: bytes) -> bool:
        """Send to the live worker with the most credit; False when none has any."""
        while (identity := self._pick()) is not None:
            peer = self.peers[identity]
            peer.sent += 1
            peer.credits -= 1
            frame = protocol.task(self.session, peer.sent, payload)
            try:
                self.socket.send_multipart([identity, frame], zmq.NOBLOCK)
            except zmq.Again:  # its pipe is full: wait for its next credit report
                peer.sent -= 1
                peer.credits = 0
                continue
            except zmq.ZMQError as exc:  # EHOSTUNREACH: the worker went away
                logger.warning("A worker went away (%s); sending to another", exc.strerror)
                self.peers.pop(identity, None)
                continue
            return True
        return False

    def live_workers(self) -> int:
        """Workers heard from within `PEER_TIMEOUT`."""
        now = time.monotonic()
        return sum(now - peer.last_seen <= PEER_TIMEOUT for peer in self.peers.values())

    def _pick(self) -> bytes | None:
        now = time.monotonic()
        best, best_credits = None, 0
        for identity, peer in list(self.peers.items()):
            if now - peer.last_seen > PEER_TIMEOUT:
                del self.peers[identity]
            elif peer.credits > best_credits:
                best, best_credits = identity, peer.credits
        if best is not None:  # to the back: workers with equal room take turns
            self.peers[best] = self.peers.pop(best)
        return best
