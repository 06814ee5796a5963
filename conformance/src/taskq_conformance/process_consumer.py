"""A consumer in another process that holds what it receives until it is killed.

The broker model check makes one vanish: the process is killed (``SIGKILL``: no shutdown, no
acknowledgement, its connections and lease keep-alive gone with it), as a worker dies in
production. Until then it reports each message it receives on its standard output, and this
side hands each report to a callback as it is read; the messages it acknowledges at once (not
the check's) are recorded as set aside.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from taskq_conformance.instances import start_in_another_process
from taskq_conformance.tags import TAGS

#: Seconds a killed process may take to be gone.
KILL_TIMEOUT = 10.0
#: How a report line starts; other output of the process is not a report.
REPORT = "received "
#: The line the process writes once its broker has started.
STARTED = "started"
#: How the line of a message it acknowledged at once starts (its first `SHOWN` bytes follow).
SET_ASIDE = "set aside:"
#: Bytes of such a message the line shows: enough for a tag at the start of the body.
SHOWN = 200

#: What the process runs: report and hold the messages whose body starts with ``prefix``, up to
#: ``capacity`` of them, then wait to be killed; acknowledge others (left by other checks or
#: runs) and say so.
HOLD = """\
from taskq.toolkit import maybe_await
held = []  # kept: a broker may release a message no one holds any more (the Redis one does)
print({started!r}, flush=True)
async for item in instance.listen():
    data = item.data if isinstance(item, taskq.AckableMessage) else item
    data = data.encode() if isinstance(data, str) else data
    if not data.startswith({prefix!r}):
        if isinstance(item, taskq.AckableMessage):
            await maybe_await(item.ack())
        print({set_aside!r} + data[:{shown}].hex(), flush=True)
        continue
    print({report!r} + data.hex(), flush=True)
    held.append(item)
    if len(held) == {capacity}:
        await asyncio.Event().wait()
"""


class ProcessConsumer:
    """A broker made by the factory ``spec`` in a new process, listening and holding.

    ``received`` is called with the body of each message the process reports, in order.
    """

    def __init__(
        self, spec: str, prefix: bytes, capacity: int, received: Callable[[bytes], None]
    ) -> None:
        body = HOLD.format(
            prefix=prefix,
            report=REPORT,
            started=STARTED,
            capacity=capacity,
            set_aside=SET_ASIDE,
            shown=SHOWN,
        )
        self.process = start_in_another_process(spec, body)
        self.received = received
        self.unread = b""
        assert self.process.stdout is not None
        self.fd = self.process.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.fd, self._readable)
        self.reading = True
        self.started = asyncio.Event()

    async def wait_started(self, timeout: float) -> bool:
        """Wait until the process's broker has started; False if it ended or took too long."""
        try:
            await asyncio.wait_for(self.started.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return self.exit_status() is None

    def exit_status(self) -> int | None:
        """The process's exit status once it has ended, else None."""
        return self.process.poll()

    def kill(self) -> None:
        """Kill the process, then report what it wrote before it died.

        Synchronous on purpose: no delivery to another consumer is handled between the kill
        and the last reports, so the reports all come before what follows the kill.
        """
        self.process.kill()
        self.process.wait(timeout=KILL_TIMEOUT)
        self._stop_reading()
        os.set_blocking(self.fd, True)
        while chunk := os.read(self.fd, 65536):
            self._feed(chunk)

    def close(self) -> None:
        """Kill the process if it still runs and release its pipe (reports nothing more)."""
        self._stop_reading()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=KILL_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def _readable(self) -> None:
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        if chunk:
            self._feed(chunk)
        else:  # the process ended: nothing more to read
            self._stop_reading()
            self.started.set()  # wakes a wait for a start that will not come

    def _feed(self, chunk: bytes) -> None:
        *lines, self.unread = (self.unread + chunk).split(b"\n")
        for line in lines:
            text = line.decode(errors="replace").strip()
            if text == STARTED:
                self.started.set()
            elif text.startswith(REPORT):
                self.received(bytes.fromhex(text.removeprefix(REPORT)))
            elif text.startswith(SET_ASIDE):
                TAGS.record(bytes.fromhex(text.removeprefix(SET_ASIDE)))

    def _stop_reading(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False
