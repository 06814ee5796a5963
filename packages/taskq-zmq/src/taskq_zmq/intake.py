"""The worker side: takes only as many messages as it has room for, and hands back the rest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from dataclasses import dataclass

import zmq

from taskq.exceptions import ListenError, SendTaskError
from taskq_zmq import protocol
from taskq_zmq.badframes import BadFrames
from taskq_zmq.binding import bind_or_raise
from taskq_zmq.lifetime import OwnContext
from taskq_zmq.peer_watch import PeerWatch
from taskq_zmq.security import CurveKeys, check_exposed

logger = logging.getLogger("taskq.zmq")

#: Seconds between credit reports when nothing else makes one (the client's liveness signal).
HEARTBEAT = 1.0
#: Seconds between credit reports while a connecting worker has no client to report to.
RETRY = 0.05
#: Seconds a worker that binds keeps a silent client's session (and the credit it granted it).
CLIENT_TIMEOUT = 5.0
#: Seconds a graceful stop may spend handing buffered messages back to the clients.
HANDBACK_TIMEOUT = 10.0
#: What a worker's bind error adds when another process holds its address.
_WORKER_IN_USE = (
    '. With bind="worker" each worker process needs an address of its own: run taskq worker '
    "--workers 1 for each address"
)
_ONE_CLIENT = b""  # the routing key of the only client a connecting (DEALER) worker has


@dataclass
class ClientSession:
    """What a worker knows of one client: its session, last task, grant and buffered messages.

    ``grant`` (only for a worker that binds) is the credit promised to this client and not used
    yet: it is topped up so that ``grant + held`` reaches the client's share of ``prefetch``.
    """

    session: bytes = b""
    last_seq: int = 0
    grant: int = 0
    held: int = 0
    last_seen: float = 0.0


class Intake:
    """Owns a worker's socket and a buffer of at most ``prefetch`` received messages.

    The worker tells each client how much room it has for it (credit); a client never sends
    more, and a task beyond it is handed back, not taken. `take` hands buffered messages to the
    worker's consumers; `close` sends what was never taken back to the clients, so a graceful
    stop loses nothing.

    A worker that connects (the default) has one DEALER socket and one client. A worker that
    binds (``bind=True``) has a ROUTER socket and any number of clients, each greeting it
    first; each client may have ``prefetch // clients`` messages buffered or in flight, and
    each hears its own credit, so no client waits on credit another one holds. Credit once
    given cannot be taken back: when a client joins, those that were there keep what they
    had, so the buffer may briefly hold up to twice ``prefetch``.
    """

    def __init__(
        self,
        context: OwnContext,
        address: str,
        bind: bool,
        prefetch: int,
        curve: CurveKeys | None = None,
        allow_unauthenticated: bool = False,
    ) -> None:
        """Open the socket on ``address`` (connect, or bind) and announce ``prefetch``.

        Raises:
            SecurityError: it would bind a non-loopback address without CURVE, and
                ``allow_unauthenticated`` is false (see `check_exposed`).
            ListenError: it cannot bind ``address`` (in use by another process, say).
        """
        if bind:
            check_exposed(address, curve, allow_unauthenticated)
        self.prefetch = prefetch
        self.routed = bind
        self.context = context  # open while this part can use its socket
        self.socket = context.socket(zmq.ROUTER if bind else zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 2000)
        self._client_link: PeerWatch | None = None  # a worker that binds: each client greets it
        if bind:
            self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
            if curve is not None:
                curve.serve(self.socket)
            bind_or_raise(self.socket, address, "worker", ListenError, _WORKER_IN_USE)
        else:
            self.socket.setsockopt(zmq.IDENTITY, os.urandom(16))
            if curve is not None:
                curve.join(self.socket)
            self._client_link = PeerWatch(context, self.socket)  # first: no handshake missed
            try:
                self.socket.connect(address)
            except zmq.ZMQError:
                self._client_link.close()
                raise
        self.buffer: deque[tuple[bytes, bytes]] = deque()  # (client routing key, payload)
        self.clients: dict[bytes, ClientSession] = {}
        self.bad_frames = BadFrames("worker")
        self.closed = False
        self._advertised = 0  # the room last reported, less the tasks that arrived since
        self._polling = False
        self._arrived = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.socket.FD, self._poll)
        self._tasks = [asyncio.create_task(self._beat())]

    async def take(self) -> bytes | None:
        """The next message; None once the intake is closed (what it holds goes back)."""
        while not self.buffer or self.closed:
            if self.closed:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        origin, payload = self.buffer.popleft()
        client = self.clients.get(origin)
        if client is not None:
            client.held -= 1
        if self.free - self._advertised >= max(1, self._share() // 4) or not self.buffer:
            self._report()
        return payload

    def forward(self, payloads: list[bytes]) -> None:
        """Send new messages to a client, which dispatches them to workers with room.

        Several go as one ZeroMQ message: all are sent or none. `SendTaskError` (none sent)
        when the worker is shut down, no client is connected, or its queue to the client is
        full.
        """
        if self.closed:
            raise SendTaskError("the ZeroMQ worker is shut down")
        if len(payloads) == 1:
            frame = protocol.FORWARD + payloads[0]
        else:
            frame = protocol.forwards(payloads)
        try:
            self._send_now(self._any_client(), frame)
        except zmq.Again:
            raise SendTaskError(
                "no ZeroMQ client is connected to this worker, or its queue to it is full"
            ) from None
        except zmq.ZMQError as exc:
            raise SendTaskError(f"no ZeroMQ client to send the task to ({exc.strerror})") from exc

    @property
    def heard_from_client(self) -> bool:
        """Whether a client has sent this worker a task or greeting (so it can take messages)."""
        return any(client.session for client in self.clients.values())

    @property
    def free(self) -> int:
        """Buffer slots not in use."""
        return self.prefetch - len(self.buffer)

    async def close(self) -> None:
        """Take no more: tell the clients, hand back what was never taken, and close.

        It first takes in the tasks that have reached its socket; each client's goodbye then
        names the last task taken from it, and nothing is read after it: the tasks still on
        their way, the client sends to another worker.
        """
        if self.closed:
            return
        self._poll()
        self.closed = True
        self._arrived.set()
        self._loop.remove_reader(self.socket.FD)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for key in list(self.clients) if self.routed else [_ONE_CLIENT]:
            client = self.clients.get(key) or ClientSession()
            with contextlib.suppress(zmq.ZMQError):
                self._send_now(key, protocol.goodbye(client.session, client.last_seq))
        handed_back = len(self.buffer)
        reason = await self._hand_back(time.monotonic() + HANDBACK_TIMEOUT)
        if self.buffer:
            logger.error(
                "%d of %d buffered messages could not be handed back: %s; they are lost",
                len(self.buffer),
                handed_back,
                reason,
            )
        self.bad_frames.summary()
        if self._client_link is not None:
            self._client_link.close()
        self.socket.close(linger=self._close_linger(handed_back))

    def _close_linger(self, handed_back: int) -> int | None:
        """Milliseconds the closing socket may spend sending what it holds (None: its own).

        A worker that connects and has no client then closes at once: its goodbye would wait
        out the whole linger for a client that may never come (nothing else is queued).
        """
        if handed_back:
            return int(HANDBACK_TIMEOUT * 1000)
        link = self._client_link
        return 0 if link is not None and not link.peers else None

    async def _hand_back(self, deadline: float) -> str:
        """Return every buffered message to its client (another when it is gone) by ``deadline``.

        ZeroMQ's send queue holds only ``SNDHWM`` messages: when it is full, this waits for the
        client to read some. Returns the reason why the buffer is not empty, if it is not.
        """
        while self.buffer:
            origin, payload = self.buffer[0]
            key = origin
            try:
                if self.routed and origin not in self.clients:
                    key = self._any_client()
                self._send_now(key, protocol.RETURN + payload)
            except zmq.Again:
                if not self.heard_from_client:  # a worker that binds: every client left
                    return "no client is connected to take them (the clients that sent them left)"
                if time.monotonic() > deadline:
                    return (
                        f"no client took them within {HANDBACK_TIMEOUT:g} s "
                        "(none is connected, or it stopped reading)"
                    )
                await asyncio.sleep(0.002)
                continue
            except zmq.ZMQError as exc:  # EHOSTUNREACH: that client went away
                if self.clients.pop(key, None) is None:
                    return f"no client is connected to take them ({exc.strerror})"
                continue
            self.buffer.popleft()
        return ""

    def _poll(self) -> None:
        """Move every frame the socket holds into the buffer (see `Dispatcher._poll`).

        Once closed it reads nothing: the goodbye told the clients which tasks it took.
        """
        if self._polling or self.closed:
            return
        self._polling = True
        arrived = False
        try:
            while int(self.socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                try:
                    frames = self.socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                arrived = self.on_message(frames) or arrived
        finally:
            self._polling = False
        if arrived:
            self._arrived.set()

    def on_message(self, frames: list[bytes]) -> bool:
        """Handle one multipart message from a client; True if it buffered a task.

        A message that fits no protocol message is ignored (logged once per peer); a task
        beyond the credit given to its client is handed back to it.
        """
        if self.routed:
            if len(frames) != 2:
                self.bad_frames.report(frames[0] if frames else b"", f"{len(frames)} frames")
                return False
            key, frame = frames
        elif len(frames) != 1:
            self.bad_frames.report(_ONE_CLIENT, f"{len(frames)} frames")
            return False
        else:
            key, frame = _ONE_CLIENT, frames[0]
        try:
            if frame[:1] == protocol.TASK:
                return self._on_task(key, *protocol.parse_task(frame))
            if frame[:1] == protocol.TASKS:
                return self._on_tasks(key, *protocol.parse_tasks(frame))
            if not self.routed:
                raise protocol.MalformedFrame(f"not a task: {frame[:20]!r}")
            if frame[:1] == protocol.HELLO:
                self._on_hello(key, protocol.parse_hello(frame))
            elif frame == protocol.BYE:
                self.clients.pop(key, None)
            else:
                raise protocol.MalformedFrame(f"unknown kind {frame[:10]!r}")
        except protocol.MalformedFrame as exc:
            self.bad_frames.report(key, exc)
        return False

    def _on_tasks(self, key: bytes, session: bytes, first_seq: int, payloads: list[bytes]) -> bool:
        took = False
        for n, payload in enumerate(payloads):
            took = self._on_task(key, session, first_seq + n, payload) or took
        return took

    def _on_task(self, key: bytes, session: bytes, seq: int, payload: bytes) -> bool:
        client = self.clients.get(key)
        if client is None:
            client = self.clients[key] = ClientSession()
        client.session, client.last_seq = session, seq
        client.last_seen = time.monotonic()
        if self.routed:  # its own credit; all clients' may briefly exceed prefetch (see class)
            over = client.grant <= 0 or len(self.buffer) >= 2 * self.prefetch
        else:
            over = len(self.buffer) >= self.prefetch
        if over:  # a client that ignores its credit: hand the task back rather than take it
            self.bad_frames.report(key, "a task beyond the credit it was given (handed back)")
            with contextlib.suppress(zmq.ZMQError):
                self._send_now(key, protocol.RETURN + payload)
            return False
        client.grant -= 1
        client.held += 1
        self._advertised -= 1  # so ``free - _advertised`` counts the slots freed since a report
        self.buffer.append((key, payload))
        return True

    def _on_hello(self, key: bytes, session: bytes) -> None:
        client = self.clients.get(key)
        fresh = client is None or client.session != session
        if client is None:
            client = self.clients[key] = ClientSession()
        client.session, client.last_seen = session, time.monotonic()
        if fresh:
            self._report()

    def _any_client(self) -> bytes:
        """The routing key of the client heard from last (the only one, for a DEALER)."""
        if not self.routed:
            return _ONE_CLIENT
        live = [key for key, client in self.clients.items() if client.session]
        if not live:
            raise zmq.Again()
        return max(live, key=lambda key: self.clients[key].last_seen)

    async def _beat(self) -> None:
        while True:
            if self.routed:
                now = time.monotonic()
                for key, client in list(self.clients.items()):
                    if now - client.last_seen > CLIENT_TIMEOUT:
                        del self.clients[key]
            reached = self._report()
            # a DEALER queues only to a connected client: until one is, try again soon
            await asyncio.sleep(HEARTBEAT if reached else RETRY)

    def _report(self) -> bool:
        """Tell each client the credit it has (a DEALER: the free room, to its one client).

        Returns whether a client could be told (a worker that binds: always).
        """
        self._advertised = self.free
        if not self.routed:
            client = self.clients.get(_ONE_CLIENT) or ClientSession()
            report = protocol.Credit(self.free, client.session, client.last_seq, client.held)
            try:
                self._send_now(_ONE_CLIENT, protocol.credit(report))
            except zmq.Again:  # no client connected: the heartbeat repeats it
                return False
            return True
        if not self.clients:
            return True
        share = self._share()
        for key, client in list(self.clients.items()):
            client.grant = max(client.grant, share - client.held)
            report = protocol.Credit(client.grant, client.session, client.last_seq, client.held)
            try:
                self._send_now(key, protocol.credit(report))
            except zmq.Again:
                continue
            except zmq.ZMQError:  # that client went away: its grant is free again
                self.clients.pop(key, None)
        return True

    def _share(self) -> int:
        """The messages each client may have buffered here or in flight to here."""
        return max(1, self.prefetch // max(1, len(self.clients)))

    def _send_now(self, key: bytes, frame: bytes) -> None:
        """Queue ``frame`` for a client without waiting; `zmq.Again` when it cannot take it."""
        try:
            if self.routed:
                self.socket.send_multipart([key, frame], flags=zmq.NOBLOCK)
            else:
                self.socket.send(frame, flags=zmq.NOBLOCK)
        finally:
            if not self.closed:
                self._poll()  # a send can take in frames without the FD signalling them
