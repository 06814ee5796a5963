"""Recording task events: a bounded buffer that a background task writes to the event store.

`record` only appends to the buffer, so recording never puts a network round trip on the task
path; every ``flush_interval_s`` (sooner when a batch is full) one `AsyncEventStore.write`
carries what was recorded, with a heartbeat when one is due. While the store does not answer,
events stay buffered; past ``max_buffered`` the oldest are dropped and counted, with a warning
at the first drop, then at most one a minute, and the total when the store answers again. A
batch the store refuses for what it holds (text that is not valid Unicode, a time that is not
a finite number) is made storable and written, rather than tried for ever. `close` writes what
is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from taskq.checks import check_count, check_seconds
from taskq.remote_error import error_text
from taskq.task_events import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_TRACEBACK_CHARS,
    EventKind,
    EventRow,
    WorkerHeartbeat,
    WorkerId,
    storable_rows,
)

if TYPE_CHECKING:
    from taskq.abc.event_store import AsyncEventStore

logger = logging.getLogger("taskq.events")

_now = time.time
_kind_of = itemgetter(0)
#: The value of the sent kind, as rows hold it (``.value`` is a property: a call each time).
_SENT = EventKind.SENT.value

#: Events kept while the store is slow or down; past it the oldest are dropped.
DEFAULT_MAX_BUFFERED = 100_000
#: Seconds between two writes to the store.
DEFAULT_FLUSH_INTERVAL_S = 0.5
#: Events per write; a full batch is written without waiting for the interval.
DEFAULT_BATCH_SIZE = 1000
#: Largest encoded message (bytes) a ``sent`` event keeps; a larger one is recorded without it.
DEFAULT_MAX_MESSAGE_BYTES = 2048
#: Characters of one part of a traceback (a frame, an error's line) it keeps: the beginning.
MAX_TRACEBACK_PART_CHARS = 1024
#: Seconds between two heartbeats of a worker.
DEFAULT_HEARTBEAT_INTERVAL_S = 5.0
#: Seconds between two warnings of events dropped while the store stays behind.
DROPPED_REPORT_INTERVAL_S = 60.0
#: Seconds `close` keeps trying to write what is left, and between two tries.
CLOSE_TIMEOUT_S = 5.0
CLOSE_RETRY_S = 0.1

#: The kinds that end a task's run in a worker (they count as processed).
FINISHED = frozenset(
    {EventKind.SUCCEEDED, EventKind.FAILED, EventKind.REJECTED, EventKind.CANCELLED}
)

#: The values of `FINISHED`, as rows hold them.
_FINISHED_TEXT = frozenset(kind.value for kind in FINISHED)

#: Makes the heartbeat of the worker that records (set by the receiver that runs the tasks).
HeartbeatSource = Callable[["EventRecorder"], WorkerHeartbeat]


def process_number() -> int:
    """This process's number under ``taskq worker --workers N`` (``worker-3`` → 3), else 0."""
    import multiprocessing  # imported when used: most processes that import this never ask

    name = multiprocessing.current_process().name
    prefix, _, number = name.rpartition("-")
    return int(number) if prefix == "worker" and number.isdigit() else 0


class EventRecorder:
    """Buffers the events of this process and writes them to ``store`` in the background.

    Args:
        store: Where events and heartbeats go.
        worker: The id events carry (default: this host and process).
        max_buffered: Events kept while the store is behind; the oldest go first.
        flush_interval_s: Seconds between writes.
        batch_size: Events per write at most.
        heartbeat_interval_s: Seconds between heartbeats (once `beat_with` is given a source).
        max_message_bytes: Largest encoded message a ``sent`` event keeps (0: none); the
            size of a larger one is recorded without it.

    Raises:
        ValueError: A count that is not an integer of at least 1 (``max_message_bytes``: 0),
            or seconds that are not a finite number above 0.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        worker: WorkerId | None = None,
        *,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        batch_size: int = DEFAULT_BATCH_SIZE,
        heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        check_count("max_buffered", max_buffered)
        check_seconds("flush_interval_s", flush_interval_s)
        check_count("batch_size", batch_size)
        check_seconds("heartbeat_interval_s", heartbeat_interval_s)
        check_count("max_message_bytes", max_message_bytes, minimum=0)
        self.store = store
        self.worker = worker or WorkerId.current(process_number())
        self.max_buffered = max_buffered
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.heartbeat_interval_s = heartbeat_interval_s
        self.max_message_bytes = max_message_bytes
        self.started_at = time.time()
        #: Runs this process finished, and how many of them failed.
        self.processed = 0
        self.failed = 0
        #: Events dropped because the buffer was full (the store was down or too slow).
        self.dropped = 0
        self._buffer: deque[EventRow] = deque()
        self._heartbeat: HeartbeatSource | None = None
        self._next_beat = 0.0
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._stopping = False  # `close` asked the background writer to stop
        self._dropped_reported = 0
        self._next_drop_report = 0.0  # monotonic time before which drops are not reported
        self._store_down = False

    # -- recording (on the task path: no await) ---------------------------------------------------

    def record(
        self,
        kind: EventKind,
        task_id: str,
        task_name: str,
        at: float | None = None,
        duration: float | None = None,
        **details: Any,
    ) -> None:
        """Buffer an event of ``kind`` for this task, at time ``at`` (default: now).

        ``duration`` and ``details`` are `TaskEvent` fields. Only an `EventRow` is made here:
        the background writer hands rows to `AsyncEventStore.write_rows`.
        """
        if details:
            if duration is not None:
                details["duration"] = duration
            fields: tuple[tuple[str, Any], ...] = tuple(details.items())
        elif duration is not None:
            fields = (("duration", duration),)
        else:
            fields = ()
        # ``_value_`` (the member's value, a plain attribute) costs less than ``.value``
        self._append((kind._value_, task_id, task_name, _now() if at is None else at, fields))

    def record_now(
        self,
        kind: EventKind,
        task_id: str,
        task_name: str,
        fields: tuple[tuple[str, Any], ...] = (),
    ) -> None:
        """Buffer an event of ``kind`` now, with ``fields`` as an `EventRow` holds them.

        `record` for the task path (the received, started and succeeded events): no
        arguments to sort out, and the row appended here rather than through a call.
        """
        buffer = self._buffer
        if len(buffer) >= self.max_buffered:
            buffer.popleft()
            self.dropped += 1
        buffer.append((kind._value_, task_id, task_name, _now(), fields))
        if len(buffer) == self.batch_size:
            self._wake.set()

    def record_sent(self, task_id: str, task_name: str, at: float, message: bytes) -> None:
        """Buffer the ``sent`` event of a task whose encoded message is ``message``.

        The event keeps the bytes (a reference, no copy) when they are at most
        ``max_message_bytes`` long, and their size in any case.
        """
        size = len(message)
        if size <= self.max_message_bytes:
            fields: tuple[tuple[str, Any], ...] = (("message", message), ("message_size", size))
        else:
            fields = (("message_size", size),)
        buffer = self._buffer  # appended here, as in `record_now`
        if len(buffer) >= self.max_buffered:
            buffer.popleft()
            self.dropped += 1
        buffer.append((_SENT, task_id, task_name, at, fields))
        if len(buffer) == self.batch_size:
            self._wake.set()

    def _append(self, row: EventRow) -> None:
        buffer = self._buffer
        if len(buffer) >= self.max_buffered:
            buffer.popleft()
            self.dropped += 1
        buffer.append(row)
        if len(buffer) == self.batch_size:
            self._wake.set()

    def record_error(
        self, kind: EventKind, task_id: str, task_name: str, error: BaseException, **details: Any
    ) -> None:
        """Buffer an event of ``kind`` carrying ``error``'s type, message and traceback.

        The message keeps its first `MAX_ERROR_MESSAGE_CHARS` characters: an error may quote
        a whole payload, and a store keeps a failure's message twice (with its task and among
        the failures).
        """
        self.record(
            kind,
            task_id,
            task_name,
            error_type=type(error).__name__,
            error_message=error_text(error)[:MAX_ERROR_MESSAGE_CHARS],
            traceback=traceback_text(error),
            **details,
        )

    def beat_with(self, source: HeartbeatSource | None) -> None:
        """Send a heartbeat made by ``source`` every ``heartbeat_interval_s`` (None: stop)."""
        self._heartbeat = source
        self._next_beat = 0.0
        self._wake.set()

    def heartbeat(self, broker: str, queue: str, concurrency: int, running: int) -> WorkerHeartbeat:
        """A heartbeat of this process now, with its totals and version."""
        from taskq import __version__

        return WorkerHeartbeat(
            worker=self.worker,
            time=time.time(),
            started_at=self.started_at,
            broker=broker,
            queue=queue,
            concurrency=concurrency,
            running=running,
            processed=self.processed,
            failed=self.failed,
            version=__version__,
        )

    # -- the background writer --------------------------------------------------------------------

    def start(self) -> None:
        """Start writing in the background (in the running event loop)."""
        if self._flusher is None or self._flusher.done():
            self._stopping = False
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def close(self) -> None:
        """Stop the background writer and write what is buffered (a last heartbeat too).

        A write in progress is let finish: cut off, it may have reached the store already
        and would be written twice. Gives up after `CLOSE_TIMEOUT_S` when the store does not
        answer, saying what is lost.
        """
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            self._stopping = True
            self._wake.set()
            await asyncio.wait({flusher}, timeout=CLOSE_TIMEOUT_S)
            flusher.cancel()  # still writing after all that time: the store does not answer
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        self._next_beat = 0.0
        while self._buffer or self._heartbeat_due():
            left = deadline - time.monotonic()
            try:
                if left > 0 and await asyncio.wait_for(self.flush(), left):
                    continue
            except asyncio.TimeoutError:
                pass
            if time.monotonic() >= deadline:
                self._report_dropped(now=True)
                logger.warning(
                    "%d task event(s) were not recorded: the event store does not answer",
                    len(self._buffer),
                )
                self._buffer.clear()
                return
            await asyncio.sleep(CLOSE_RETRY_S)
        self._report_dropped(now=True)

    async def flush(self) -> bool:
        """Write one batch (and a due heartbeat) now; return False when the store failed."""
        self._report_dropped()
        batch = self._take_batch()
        self._tally(batch, 1)
        heartbeats = [self._make_heartbeat()] if self._heartbeat_due() else []
        if not batch and not heartbeats:
            return True
        try:
            await self.store.write_rows(self.worker, batch, heartbeats)
        except asyncio.CancelledError:  # stopped mid-write: keep the batch for `close`
            self._tally(batch, -1)
            self._put_back(batch)
            raise
        except Exception as exc:
            self._tally(batch, -1)
            repaired = storable_rows(batch, _now())
            if repaired is not None:  # refused for what it holds: the store may be fine
                self._put_back(repaired)
                self._wake.set()
                logger.warning(
                    "The event store refused a batch (%s): it held text that is not valid "
                    "Unicode or a time that is not a finite number; recorded with escapes "
                    "and the time of the retry instead",
                    exc,
                )
                return True
            self._put_back(batch)
            if not self._store_down:
                logger.warning(
                    "The event store failed (%s); events stay buffered (up to %d) meanwhile",
                    exc,
                    self.max_buffered,
                )
            self._store_down = True
            return False
        if self._store_down:
            logger.info("The event store answers again")
            self._store_down = False
            self._report_dropped(now=True)
        if heartbeats:
            self._next_beat = time.monotonic() + self.heartbeat_interval_s
        return True

    async def _flush_forever(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._seconds_to_wait())
            self._wake.clear()
            if self._stopping:  # `close` writes the rest
                return
            ok = await self.flush()
            while ok and len(self._buffer) >= self.batch_size and not self._stopping:
                ok = await self.flush()

    def _seconds_to_wait(self) -> float:
        wait = self.flush_interval_s
        if self._heartbeat is not None:
            wait = min(wait, max(0.0, self._next_beat - time.monotonic()))
        return wait

    def _heartbeat_due(self) -> bool:
        return self._heartbeat is not None and time.monotonic() >= self._next_beat

    def _make_heartbeat(self) -> WorkerHeartbeat:
        assert self._heartbeat is not None
        return self._heartbeat(self)

    def _take_batch(self) -> list[EventRow]:
        """Take the oldest `batch_size` rows (all of them at once when they fit)."""
        buffer = self._buffer
        if len(buffer) <= self.batch_size:
            batch = list(buffer)
            buffer.clear()
            return batch
        return [buffer.popleft() for _ in range(self.batch_size)]

    def _tally(self, batch: list[EventRow], sign: int) -> None:
        """Count (``sign`` 1) or uncount (-1) the runs ``batch`` finishes, for the heartbeat."""
        kinds = Counter(map(_kind_of, batch))
        self.processed += sign * sum(kinds[kind] for kind in _FINISHED_TEXT)
        self.failed += sign * kinds[EventKind.FAILED.value]

    def _put_back(self, batch: list[EventRow]) -> None:
        """Return a batch the store refused to the front of the buffer, dropping the oldest."""
        room = self.max_buffered - len(self._buffer)
        keep = batch[len(batch) - room :] if room < len(batch) else batch
        self.dropped += len(batch) - len(keep)
        self._buffer.extendleft(reversed(keep))

    def _report_dropped(self, *, now: bool = False) -> None:
        """Warn of the events dropped since the last warning, at most once a minute.

        ``now``: whatever the time (the store answers again, or the recorder closes).
        """
        new = self.dropped - self._dropped_reported
        if new and (now or time.monotonic() >= self._next_drop_report):
            self._dropped_reported = self.dropped
            self._next_drop_report = time.monotonic() + DROPPED_REPORT_INTERVAL_S
            logger.warning(
                "Dropped %d task event(s) (%d in all): the buffer of %d was full while the "
                "event store was behind",
                new,
                self.dropped,
                self.max_buffered,
            )


def traceback_text(error: BaseException) -> str | None:
    """``error``'s formatted traceback, its last `MAX_TRACEBACK_CHARS` characters; None without.

    Each part (a frame, an error's line with its message) keeps its first
    `MAX_TRACEBACK_PART_CHARS` characters: a long message would push every frame out.
    """
    if error.__traceback__ is None:
        return None
    parts = traceback.TracebackException.from_exception(error).format()
    return "".join(map(_cut_part, parts))[-MAX_TRACEBACK_CHARS:]


def _cut_part(part: str) -> str:
    if len(part) <= MAX_TRACEBACK_PART_CHARS:
        return part
    left_out = len(part) - MAX_TRACEBACK_PART_CHARS
    return f"{part[:MAX_TRACEBACK_PART_CHARS]}... ({left_out} more characters)\n"
