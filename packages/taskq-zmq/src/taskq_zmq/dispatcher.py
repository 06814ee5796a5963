"""The client side: sends each message to one worker with room for it, or waits for one."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field

import zmq

from taskq.exceptions import SendTaskError
from taskq.inspection import ConsumerInfo, QueueInspection
from taskq_zmq import protocol
from taskq_zmq.badframes import BadFrames
from taskq_zmq.binding import bind_or_raise
from taskq_zmq.lifetime import OwnContext
from taskq_zmq.security import CurveKeys, check_exposed

logger = logging.getLogger("taskq.zmq")

#: Seconds without a credit report after which a worker is taken for gone.
PEER_TIMEOUT = 5.0
#: Seconds a message may wait for a worker before the wait is logged (it goes on waiting).
WAIT_WARNING = 5.0
#: Seconds between the client's checks for gone workers (and greetings to workers that bind).
HEARTBEAT = 1.0
#: What a client's bind error adds when another process holds its address.
_CLIENT_IN_USE = (
    " (another client, or a worker process whose task sent a task before any client reached "
    "it). Stop it, or give each client an address of its own; many clients can share workers "
    'with bind="worker"'
)


@dataclass
class Peer:
    """What the client knows of one worker.

    ``sent`` numbers the tasks sent to it; ``seen`` is the last of them it reported receiving,
    ``held`` how many of them it reported holding unstarted then; ``assigned`` are the messages
    given its credit that leave at the next `Dispatcher.flush`; ``in_transit`` are those sent
    after ``seen`` (numbered ``seen + 1`` to ``sent``), kept until it reports receiving them:
    those it never received when it leaves go to another worker.
    """

    sent: int = 0
    credits: int = 0
    last_seen: float = 0.0
    seen: int = 0
    held: int = 0
    assigned: list[bytes] = field(default_factory=list)
    in_transit: deque[bytes] = field(default_factory=deque)

    def received(self, last_seq: int) -> None:
        """It reported receiving the tasks up to ``last_seq`` (from ``seen`` to ``sent``)."""
        for _ in range(last_seq - self.seen):
            self.in_transit.popleft()
        self.seen = last_seq

    @property
    def unstarted(self) -> int:
        """Messages given to it that it had not started by its last report (held or in flight)."""
        return self.held + self.sent - self.seen + len(self.assigned)


class Pending:
    """The messages of one kick (or batch) that wait in the outbox for a worker with room.

    ``sent`` counts those of ``total`` assigned to a worker so far (the first ones: the outbox
    keeps their order); ``done`` ends when all are, or fails when the client shuts down first.
    """

    __slots__ = ("done", "sent", "total")

    def __init__(self, total: int, sent: int, done: asyncio.Future[None]) -> None:
        """``sent`` of ``total`` messages already sent; ``done`` is the future to end."""
        self.total = total
        self.sent = sent
        self.done = done

    def count_sent(self) -> None:
        """One more message assigned: end ``done`` with the last."""
        self.sent += 1
        if self.sent == self.total and not self.done.done():
            self.done.set_result(None)

    async def wait(self) -> None:
        """Wait until every message is assigned, logging once if it takes `WAIT_WARNING` s.

        Cancelling the wait leaves the messages in the outbox: they are sent all the same.
        """
        warning = asyncio.get_running_loop().call_later(
            WAIT_WARNING,
            logger.warning,
            "No worker has room for a message for %.0f s; still waiting",
            WAIT_WARNING,
        )
        try:
            await self.done
        finally:
            warning.cancel()


def split_by_credit(credits: dict[bytes, int], count: int) -> dict[bytes, int]:
    """How many of ``count`` messages each worker gets, as one-by-one sends would give them.

    Sending one at a time to the worker with the most credit levels the credits from the
    top: each worker gets what it has above a common level, and where that leaves one over
    for some of the workers at the level, those first in ``credits``' order (the least
    recently used) get it. Workers whose credit is not positive get none; all credit together
    may cover less than ``count``.
    """
    room = {identity: n for identity, n in credits.items() if n > 0}
    if sum(room.values()) <= count:
        return room

    def above(level: int) -> int:
        return sum(max(n - level, 0) for n in room.values())

    low, high = 0, max(room.values())  # the highest level leaving at least ``count`` above it
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if above(mid) >= count else (low, mid - 1)
    extra = above(low) - count  # fewer than the workers above ``low + 1``: take one back each
    shares = {identity: max(n - low, 0) for identity, n in room.items()}
    for identity in reversed(room):
        if extra and room[identity] > low:
            shares[identity] -= 1
            extra -= 1
    return shares


class Dispatcher:
    """The client's ROUTER socket: tracks workers' credits, sends, waits when none has room.

    A message that finds credit is assigned to that worker, and what each worker was assigned
    during one turn of the event loop leaves as one ZeroMQ message right after it (a task
    frame, or a batch): a ``kick`` costs no system call, and ZeroMQ's I/O thread wakes once per
    batch. A message that finds no credit waits in an outbox (its ``kick`` waits with it);
    messages a worker hands back, and those a leaving worker says it never received, go to the
    front of the outbox.

    When it binds (the default), workers connect and speak first. When it connects (workers
    bind), ``address`` may list several workers' addresses separated by commas; the client
    greets each (every `HEARTBEAT` s), and a worker answers with the credit it grants this
    client alone.
    """

    def __init__(
        self,
        context: OwnContext,
        address: str,
        bind: bool,
        curve: CurveKeys | None = None,
        allow_unauthenticated: bool = False,
    ) -> None:
        """Open the ROUTER socket on ``address`` (bind, or connect), CURVE-secured if given.

        Raises:
            SecurityError: it would bind a non-loopback address without CURVE, and
                ``allow_unauthenticated`` is false (see `check_exposed`).
            SendTaskError: it cannot bind ``address`` (in use by another process, say).
        """
        if bind:
            check_exposed(address, curve, allow_unauthenticated)
        self.session = os.urandom(protocol.SESSION_SIZE)
        self.address = address
        self.context = context  # open while this part can use its socket
        # a plain socket: the event loop watches its FD, and sends never wait (credit-bounded)
        self.socket = context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.workers: list[bytes] = []  # the workers it connects to (their routing ids)
        if bind:
            if curve is not None:
                curve.serve(self.socket)
            bind_or_raise(self.socket, address, "client", SendTaskError, _CLIENT_IN_USE)
        else:
            if curve is not None:
                curve.join(self.socket)
            for endpoint in filter(None, (a.strip() for a in address.split(","))):
                routing_id = b"worker@" + endpoint.encode()
                self.socket.setsockopt(zmq.CONNECT_ROUTING_ID, routing_id)
                self.socket.connect(endpoint)
                self.workers.append(routing_id)
        self.peers: dict[bytes, Peer] = {}
        self.outbox: deque[tuple[bytes, Pending | None]] = deque()
        self.bad_frames = BadFrames("client")
        self.closed = False
        self._polling = False
        self._flush_soon = False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.socket.FD, self._poll)
        self._greet()
        self._watch = asyncio.create_task(self._keep_watch())
        self._poll()

    def offer(self, payloads: list[bytes]) -> Pending | None:
        """Assign ``payloads`` to workers with room; None if all found room, else what waits.

        Assigned messages leave right after the current turn of the event loop, one ZeroMQ
        message per worker (see `flush`). Messages that find no credit wait in the outbox, in
        order, behind those already waiting; the returned `Pending` ends when the last of them
        is assigned.
        """
        if self.closed:
            raise SendTaskError("the ZeroMQ broker is shut down")
        assigned = 0
        if not self.outbox:
            if len(payloads) == 1:
                assigned = self._assign_one(payloads[0])
            else:
                assigned = self._assign(payloads)
            if assigned and not self._flush_soon:
                self._flush_soon = True
                self._loop.call_soon(self.flush)
            if assigned == len(payloads):
                return None
        pending = Pending(len(payloads), assigned, self._loop.create_future())
        self.outbox.extend((payload, pending) for payload in payloads[assigned:])
        return pending

    def flush(self) -> None:
        """Send each worker what was assigned to it, as one message; then read what arrived.

        What a worker cannot take after all (its pipe is full, or it went away) goes back to
        the front of the outbox, for another worker.
        """
        self._flush_soon = False
        if self.closed:
            return
        for identity, peer in list(self.peers.items()):
            if peer.assigned:
                self._send_assigned(identity, peer)
        self._poll()

    async def close(self) -> None:
        """Stop: send what was assigned; messages still waiting fail their ``kick``."""
        self.flush()
        self.closed = True
        self._watch.cancel()
        await asyncio.gather(self._watch, return_exceptions=True)
        self._loop.remove_reader(self.socket.FD)
        for routing_id in self.workers:  # workers that bind free the credit they gave it
            with contextlib.suppress(zmq.ZMQError):
                self.socket.send_multipart([routing_id, protocol.BYE], zmq.NOBLOCK)
        error = SendTaskError("the ZeroMQ broker shut down before a worker took the message")
        dropped = [payload for payload, pending in self.outbox if pending is None]
        for _, pending in self.outbox:
            if pending is not None and not pending.done.done():
                pending.done.set_exception(error)
        if dropped:  # one line, however many: a stop during a hand-back may drop thousands
            logger.error(
                "Shutdown dropped %d messages workers had handed back or sent (%d bytes): "
                "they are lost",
                len(dropped),
                sum(map(len, dropped)),
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
        elif kind == protocol.FORWARDS:
            self.outbox.extend((payload, None) for payload in protocol.parse_forwards(frame))
        elif kind == protocol.BYE:
            self._on_goodbye(identity, *protocol.parse_goodbye(frame))
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
                peer.sent = peer.seen = report.last_seq
                peer.in_transit.clear()
            peer.received(report.last_seq)
            peer.held = report.held
        peer.credits = report.free - (peer.sent - peer.seen) - len(peer.assigned)
        peer.last_seen = time.monotonic()

    def _on_goodbye(self, identity: bytes, session: bytes, last_seq: int) -> None:
        """A worker leaves: the tasks it never received go back in front of the outbox.

        It hands back those it received and did not start, after this goodbye.
        """
        peer = self._forget(identity)
        if peer is None:
            return
        if session != self.session:  # it never received a task of this client
            last_seq = peer.seen
        if not peer.seen <= last_seq <= peer.sent:
            self._lost(peer, "left")
            raise protocol.MalformedFrame(f"a goodbye after task {last_seq}, of {peer.sent} sent")
        peer.received(last_seq)
        self._put_back(list(peer.in_transit))

    def _drain(self) -> None:
        """Send waiting messages, from the front, as far as the workers' credit goes."""
        while self.outbox:
            room = sum(max(peer.credits, 0) for peer in self.peers.values())
            waiting = [payload for payload, _ in itertools.islice(self.outbox, room)]
            assigned = self._assign(waiting) if waiting else 0
            if not assigned:
                return
            for _ in range(assigned):
                _, pending = self.outbox.popleft()
                if pending is not None:
                    pending.count_sent()
            self.flush()  # a worker that cannot take them after all: they are back in front

    def _assign_one(self, payload: bytes) -> int:
        """Assign to the live worker with the most credit; 1 if assigned, 0 when none has any."""
        identity = self._pick()
        if identity is None:
            return 0
        peer = self.peers[identity]
        peer.credits -= 1
        peer.assigned.append(payload)
        return 1

    def _assign(self, payloads: list[bytes]) -> int:
        """Assign ``payloads`` from the front as far as credit goes; return how many.

        The batch is split as assigning one at a time to the worker with the most room would
        split it (see `split_by_credit`); silent workers are skipped, as `_pick` skips them.
        It leaves the outbox as it is (`_drain` counts on it).
        """
        now = time.monotonic()
        credits = {
            identity: peer.credits
            for identity, peer in self.peers.items()
            if now - peer.last_seen <= PEER_TIMEOUT
        }
        assigned = 0
        for identity, count in split_by_credit(credits, len(payloads)).items():
            peer = self.peers.pop(identity)
            self.peers[identity] = peer  # to the back, as `_pick` does
            peer.credits -= count
            peer.assigned.extend(payloads[assigned : assigned + count])
            assigned += count
        return assigned

    def _send_assigned(self, identity: bytes, peer: Peer) -> None:
        """Send a worker what was assigned to it as one message; else put it back in front."""
        payloads, peer.assigned = peer.assigned, []
        if len(payloads) == 1:
            frame = protocol.task(self.session, peer.sent + 1, payloads[0])
        else:
            frame = protocol.tasks(self.session, peer.sent + 1, payloads)
        try:
            self.socket.send_multipart([identity, frame], zmq.NOBLOCK)
        except zmq.ZMQError:  # its pipe is full (EAGAIN), or it went away (EHOSTUNREACH):
            # nothing more until its next report, or its goodbye (which may still wait to be
            # read, and says which tasks it received), or the silence that forgets it
            peer.credits = 0
            self._put_back(payloads)
        else:
            peer.sent += len(payloads)
            peer.in_transit.extend(payloads)

    def _put_back(self, payloads: list[bytes]) -> None:
        """Messages assigned to a worker that cannot take them: to the front of the outbox."""
        self.outbox.extendleft((payload, None) for payload in reversed(payloads))

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
        """The live worker with the most credit (None if none has any), moved to the back.

        Silent workers are skipped here and forgotten by the heartbeat (every `HEARTBEAT` s).
        """
        now = time.monotonic()
        best, best_credits = None, 0
        for identity, peer in self.peers.items():
            if peer.credits > best_credits and now - peer.last_seen <= PEER_TIMEOUT:
                best, best_credits = identity, peer.credits
        if best is not None and len(self.peers) > 1:  # workers with equal room take turns
            self.peers[best] = self.peers.pop(best)
        return best

    def _drop_silent(self) -> None:
        """Forget the workers that sent no report for `PEER_TIMEOUT` s."""
        now = time.monotonic()
        for identity, peer in list(self.peers.items()):
            if now - peer.last_seen > PEER_TIMEOUT:
                self._drop(identity, f"silent for {PEER_TIMEOUT:.0f} s")

    def _drop(self, identity: bytes, reason: str) -> None:
        """Forget a worker that went away, saying what was lost with it."""
        peer = self._forget(identity)
        if peer is not None:
            self._lost(peer, f"went away ({reason})")

    def _forget(self, identity: bytes) -> Peer | None:
        """Forget a worker; what was assigned to it and not sent goes to another."""
        peer = self.peers.pop(identity, None)
        if peer is not None and peer.assigned:
            self._put_back(peer.assigned)
            peer.assigned = []
        return peer

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
            self._drop_silent()
            self._greet()
            self._poll()


def _peer_name(identity: bytes) -> str:
    """A worker's routing id as text: its address when it binds, else hex."""
    if identity.startswith(b"worker@"):
        return identity.decode(errors="backslashreplace")
    return identity.hex()
