"""The client side: sends each message to one worker with room for it, or waits for one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from dataclasses import dataclass

import zmq

from taskq.exceptions import SendTaskError
from taskq.inspection import ConsumerInfo, QueueInspection
from taskq_zmq import protocol
from taskq_zmq.badframes import BadFrames
from taskq_zmq.security import CurveKeys, warn_if_exposed

logger = logging.getLogger("taskq.zmq")

#: Seconds without a credit report after which a worker is taken for gone.
PEER_TIMEOUT = 5.0
#: Seconds a message may wait for a worker before the wait is logged (it goes on waiting).
WAIT_WARNING = 5.0
#: Seconds between the client's checks for gone workers (and greetings to workers that bind).
HEARTBEAT = 1.0


@dataclass
class Peer:
    """What the client knows of one worker.

    ``sent`` numbers the tasks sent to it; ``seen`` is the last of them it reported receiving,
    ``held`` how many of them it reported holding unstarted then.
    """

    sent: int = 0
    credits: int = 0
    last_seen: float = 0.0
    seen: int = 0
    held: int = 0

    @property
    def unstarted(self) -> int:
        """Messages sent to it that it had not started by its last report (held or in flight)."""
        return self.held + self.sent - self.seen


class Dispatcher:
    """The client's ROUTER socket: tracks workers' credits, sends, waits when none has room.

    A message that finds no credit waits in an outbox (its ``kick`` waits with it); messages a
    worker hands back go to the front of the outbox.

    When it binds (the default), workers connect and speak first. When it connects (workers
    bind), ``address`` may list several workers' addresses separated by commas; the client
    greets each (every `HEARTBEAT` s), and a worker answers with the credit it grants this
    client alone.
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        address: str,
        bind: bool,
        curve: CurveKeys | None = None,
    ) -> None:
        """Open the ROUTER socket on ``address`` (bind, or connect), CURVE-secured if given."""
        self.session = os.urandom(protocol.SESSION_SIZE)
        self.address = address
        # a plain socket: the event loop watches its FD, and sends never wait (credit-bounded)
        self.socket = context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.workers: list[bytes] = []  # the workers it connects to (their routing ids)
        if bind:
            if curve is not None:
                curve.serve(self.socket)
            warn_if_exposed(address, curve)
            self.socket.bind(address)
        else:
            if curve is not None:
                curve.join(self.socket)
            for endpoint in filter(None, (a.strip() for a in address.split(","))):
                routing_id = b"worker@" + endpoint.encode()
                self.socket.setsockopt(zmq.CONNECT_ROUTING_ID, routing_id)
                self.socket.connect(endpoint)
                self.workers.append(routing_id)
        self.peers: dict[bytes, Peer] = {}
        self.outbox: deque[tuple[bytes, asyncio.Future[None] | None]] = deque()
        self.bad_frames = BadFrames("client")
        self.closed = False
        self._polling = False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.socket.FD, self._poll)
        self._greet()
        self._watch = asyncio.create_task(self._keep_watch())
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
        self._watch.cancel()
        await asyncio.gather(self._watch, return_exceptions=True)
        self._loop.remove_reader(self.socket.FD)
        for routing_id in self.workers:  # workers that bind free the credit they gave it
            with contextlib.suppress(zmq.ZMQError):
                self.socket.send_multipart([routing_id, protocol.BYE], zmq.NOBLOCK)
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
        self.bad_frames.summary()
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
                self.on_message(frames)
                self._drain()
        finally:
            self._polling = False

    def on_message(self, frames: list[bytes]) -> None:
        """Handle one multipart message from a worker; one that fits no message is ignored."""
        if len(frames) != 2:
            self.bad_frames.report(frames[0] if frames else b"", f"{len(frames)} frames")
            return
        identity, frame = frames
        try:
            self._on_frame(identity, frame)
        except protocol.MalformedFrame as exc:
            self.bad_frames.report(identity, exc)

    def _on_frame(self, identity: bytes, frame: bytes) -> None:
        kind = frame[:1]
        if kind == protocol.CREDIT:
            self._on_credit(identity, protocol.parse_credit(frame))
        elif kind == protocol.RETURN:
            self.outbox.appendleft((frame[1:], None))
        elif kind == protocol.FORWARD:
            self.outbox.append((frame[1:], None))
        elif kind == protocol.BYE and len(frame) == 1:
            self.peers.pop(identity, None)
        else:
            raise protocol.MalformedFrame(f"unknown kind {frame[:10]!r}")

    def _on_credit(self, identity: bytes, report: protocol.Credit) -> None:
        peer = self.peers.get(identity)
        if peer is None:  # a new worker, or one forgotten (silent too long): take its count
            peer = self.peers[identity] = Peer()
            if report.session == self.session:
                peer.sent = peer.seen = min(report.last_seq, 2**63)
        if report.session == self.session:
            if report.last_seq > peer.sent:
                peer.last_seen = time.monotonic()
                raise protocol.MalformedFrame(
                    f"a report of task {report.last_seq} received, of {peer.sent} sent"
                )
            if report.last_seq < peer.seen:  # the worker restarted: it lost what it held
                self._lost(peer, "restarted")
                peer.sent = report.last_seq
            peer.seen, peer.held = report.last_seq, report.held
        peer.credits = report.free - (peer.sent - peer.seen)
        peer.last_seen = time.monotonic()

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
                peer.sent -= 1
                self._drop(identity, exc.strerror)
                continue
            return True
        return False

    def live_workers(self) -> int:
        """Workers heard from within `PEER_TIMEOUT`."""
        now = time.monotonic()
        return sum(now - peer.last_seen <= PEER_TIMEOUT for peer in self.peers.values())

    def inspect(self) -> QueueInspection:
        """This client's view: messages waiting for room, and those each worker has not started.

        ``ready`` counts the outbox; a live worker's ``in_flight`` is what this client sent it
        that it had not started by its last report (what it runs is not reported).
        """
        now = time.monotonic()
        workers = tuple(
            ConsumerInfo(_peer_name(identity), peer.unstarted)
            for identity, peer in self.peers.items()
            if now - peer.last_seen <= PEER_TIMEOUT
        )
        return QueueInspection(
            queue=self.address,
            ready=len(self.outbox),
            in_flight=sum(worker.in_flight or 0 for worker in workers),
            consumers=workers,
        )

    def _pick(self) -> bytes | None:
        now = time.monotonic()
        best, best_credits = None, 0
        for identity, peer in list(self.peers.items()):
            if now - peer.last_seen > PEER_TIMEOUT:
                self._drop(identity, f"silent for {PEER_TIMEOUT:.0f} s")
            elif peer.credits > best_credits:
                best, best_credits = identity, peer.credits
        if best is not None:  # to the back: workers with equal room take turns
            self.peers[best] = self.peers.pop(best)
        return best

    def _drop(self, identity: bytes, reason: str) -> None:
        """Forget a worker that went away, saying what was lost with it."""
        peer = self.peers.pop(identity, None)
        if peer is not None:
            self._lost(peer, f"went away ({reason})")

    def _lost(self, peer: Peer, what: str) -> None:
        if peer.unstarted > 0:
            logger.error(
                "A worker %s holding %d messages this client sent it that it had not started "
                "(by its last report), besides any it was running: they are lost (ZeroMQ does "
                "not redeliver)",
                what,
                peer.unstarted,
            )
        else:
            logger.info("A worker %s; it held no unstarted message of this client", what)

    def _greet(self) -> None:
        """Greet the workers this client connects to (they bind), so they grant it credit."""
        for routing_id in self.workers:
            with contextlib.suppress(zmq.ZMQError):  # not connected yet: the next beat retries
                self.socket.send_multipart([routing_id, protocol.hello(self.session)], zmq.NOBLOCK)

    async def _keep_watch(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            now = time.monotonic()
            for identity, peer in list(self.peers.items()):
                if now - peer.last_seen > PEER_TIMEOUT:
                    self._drop(identity, f"silent for {PEER_TIMEOUT:.0f} s")
            self._greet()
            self._poll()


def _peer_name(identity: bytes) -> str:
    """A worker's routing id as text: its address when it binds, else hex."""
    if identity.startswith(b"worker@"):
        return identity.decode(errors="backslashreplace")
    return identity.hex()
