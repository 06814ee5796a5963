"""Task events and worker heartbeats: the plain records an event store keeps and answers with."""

from __future__ import annotations

import base64
import contextlib
import enum
import math
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from taskq.checks import check_count, check_seconds
from taskq.exceptions import EventStoreError

#: Default bound on the number of events a store keeps.
DEFAULT_MAX_EVENTS = 100_000
#: Default bound on the age of what a store keeps, in seconds (7 days).
DEFAULT_MAX_AGE_S = 7 * 24 * 3600.0
#: Default number of tasks in one page of `AsyncEventStore.tasks`.
DEFAULT_PAGE_SIZE = 50
#: Characters of a task id a store keeps; a longer one is kept shortened (`stored_task_id`).
MAX_TASK_ID_CHARS = 512
#: Characters of a task name a store keeps; a longer one is kept shortened (`stored_task_name`).
MAX_TASK_NAME_CHARS = 512
#: Characters of an error's type name a store keeps; a longer one is kept `shortened`.
MAX_ERROR_TYPE_CHARS = 512
#: Characters of an error's message an event keeps: the beginning.
MAX_ERROR_MESSAGE_CHARS = 8192
#: Characters of an error's traceback an event keeps: the end, where the error was raised.
MAX_TRACEBACK_CHARS = 8192
#: Characters of a worker's host name a store keeps (a DNS name has at most 253); a longer one
#: is kept `shortened` (`stored_worker`).
MAX_HOST_CHARS = 255
#: Characters of a heartbeat's ``broker``, ``queue`` and ``version`` a store keeps; a longer one
#: is kept `shortened` (`bounded_heartbeats`).
MAX_HEARTBEAT_TEXT_CHARS = 512
#: Characters of a value a log line or an error message quotes at most (`quoted`).
MAX_QUOTED_CHARS = 512
#: Hex digits of the digest that ends a shortened id or name, and what comes before them.
_DIGEST_CHARS = 32
_DIGEST_MARK = "...#"
#: The text fields of a `WorkerHeartbeat` a store bounds to `MAX_HEARTBEAT_TEXT_CHARS`.
_HEARTBEAT_TEXTS = ("broker", "queue", "version")


class EventKind(str, enum.Enum):
    """What happened to a task: ``sent`` by `kiq`, then what the worker did with it."""

    SENT = "sent"
    RECEIVED = "received"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRIED = "retried"
    REJECTED = "rejected"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, order=True)
class WorkerId:
    """The process that recorded an event: host name, process id and process number.

    The process number is the index of a worker process under `taskq worker --workers N`
    (0 for a client or a single process). ``str()`` gives ``host:pid:process``.
    """

    host: str
    pid: int
    process: int = 0

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.process}"

    @classmethod
    def parse(cls, text: str) -> WorkerId:
        """Read the ``host:pid:process`` form; raise `EventStoreError` when it is not one."""
        host, _, rest = text.rpartition(":")
        host, _, pid = host.rpartition(":")
        try:
            return cls(host, int(pid), int(rest))
        except ValueError:
            raise EventStoreError(f"not a worker id (host:pid:process): {quoted(text)}") from None

    @classmethod
    def current(cls, process: int = 0) -> WorkerId:
        """The id of this process, as process number ``process``."""
        return cls(socket.gethostname(), os.getpid(), process)


#: An event as recorders buffer it and `AsyncEventStore.write_rows` takes it: kind, task id,
#: task name, time and the other `TaskEvent` fields that are set as (name, value) pairs.
#: Cheaper to make than a `TaskEvent` (stores build those when asked), and made of strings,
#: numbers and tuples only (the kind as its value): the garbage collector stops tracking such
#: tuples, so rows waiting in a buffer or kept by a store do not slow its collections down.
EventRow = tuple[str, str, str, float, tuple[tuple[str, Any], ...]]
#: The `TaskEvent` fields an `EventRow` carries by name.
_DETAILS = (
    "duration",
    "error_type",
    "error_message",
    "retry",
    "retry_delay",
    "message",
    "message_size",
    "new_task_id",
    "traceback",
)

#: The types of the `TaskEvent` fields `TaskEvent.checked` checks (besides ``time``), when set.
_FIELD_TYPES: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("task_id", str),
    ("task_name", str),
    ("duration", (int, float)),
    ("error_type", str),
    ("error_message", str),
    ("retry", int),
    ("retry_delay", (int, float)),
    ("message", bytes),
    ("message_size", int),
    ("new_task_id", str),
    ("traceback", str),
)


@dataclass(frozen=True)
class TaskEvent:
    """One lifecycle event of one task.

    ``time`` is wall-clock Unix seconds; ``duration`` (seconds) is set on ``succeeded`` and
    ``failed``; ``error_type``/``error_message`` on ``failed``, ``rejected`` and
    ``cancelled``; ``retry`` (1 for the first retry) and ``retry_delay`` (seconds) on
    ``retried``. ``worker`` is the process that recorded it (for ``sent``: the sender).

    On ``sent`` events recorded by `kiq`: ``message_size`` is the size in bytes of the message
    as the broker's formatter encoded it, and ``message`` holds those bytes (decode them with
    ``broker.formatter.loads``: task name, labels, args, kwargs) unless they were larger than
    the recorder's ``max_message_bytes``. On a ``retried`` event recorded when a task is sent
    again as a new task (the dashboard's *Retry*), ``new_task_id`` names that task. An event
    with an error raised where the worker ran it carries its formatted ``traceback`` (the last
    ``MAX_TRACEBACK_CHARS`` characters of it).
    """

    kind: EventKind
    task_id: str
    task_name: str
    worker: WorkerId
    time: float
    duration: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    retry: int | None = None
    retry_delay: float | None = None
    message: bytes | None = None
    message_size: int | None = None
    new_task_id: str | None = None
    traceback: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data: the worker id as its string form, None fields left out.

        ``message`` becomes base64 text (see `message_text`).
        """
        data: dict[str, Any] = {
            "kind": self.kind.value,
            "task_id": self.task_id,
            "task_name": self.task_name,
            "worker": str(self.worker),
            "time": self.time,
        }
        for key in _DETAILS:
            value = getattr(self, key)
            if value is not None:
                data[key] = message_text(value) if key == "message" else value
        return data

    def checked(self) -> TaskEvent:
        """This event, or `TypeError` when a field has the wrong type (as read from a store)."""
        if not (isinstance(self.time, int | float) and math.isfinite(self.time)):
            raise TypeError(f"time is not a finite number: {self.time!r}")
        for name, kinds in _FIELD_TYPES:
            value = getattr(self, name)
            if value is not None and not isinstance(value, kinds):
                raise TypeError(f"{name} is a {type(value).__name__}")
        return self

    def as_row(self) -> EventRow:
        """The event as an `EventRow` (its worker aside)."""
        details = tuple(
            (key, getattr(self, key)) for key in _DETAILS if getattr(self, key) is not None
        )
        return (self.kind.value, self.task_id, self.task_name, self.time, details)

    @classmethod
    def from_row(cls, worker: WorkerId, row: EventRow) -> TaskEvent:
        """The event of ``row``, recorded by ``worker``."""
        kind, task_id, task_name, at, details = row
        return cls(EventKind(kind), task_id, task_name, worker, at, **dict(details))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskEvent:
        """Rebuild an event from `as_dict` data; raise `EventStoreError` when it is not one."""
        try:
            fields = dict(data)
            fields["kind"] = EventKind(fields["kind"])
            fields["worker"] = WorkerId.parse(fields["worker"])
            if fields.get("message") is not None:
                fields["message"] = base64.b64decode(fields["message"], validate=True)
            return cls(**fields).checked()
        except (KeyError, TypeError, ValueError) as error:
            raise EventStoreError(f"not a task event: {_why(data, error)}") from None


def check_times(times: Iterable[float], heartbeats: Sequence[WorkerHeartbeat] = ()) -> None:
    """Raise `EventStoreError` unless each event's and heartbeat's time is a finite number.

    A store calls it before it writes anything, so a refused batch leaves nothing behind.
    """
    try:  # NaN or an infinity makes the sum so: one pass in C
        total = sum(times) + sum(beat.time + beat.started_at for beat in heartbeats)
    except TypeError:
        total = math.nan
    if not math.isfinite(total):
        raise EventStoreError("a batch was refused whole: a time in it is not a finite number")


def storable_text(text: str) -> str:
    r"""``text`` with each lone surrogate (not Unicode a store can encode) as its escape.

    Text decoded with ``surrogateescape`` (a file name that is not UTF-8, in an error message)
    or read from JSON (``"\ud800"``) can hold one; SQLite and Redis refuse it.
    """
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def storable_rows(rows: Sequence[EventRow], now: float) -> list[EventRow] | None:
    """``rows`` made storable, or None when each already was (as it nearly always is).

    Lone surrogates in the text become escapes (`storable_text`) and a time that is not a
    finite number becomes ``now``: a store refuses a batch holding either, whole.
    """
    repaired = [_storable_row(row, now) for row in rows]
    return None if repaired == list(rows) else repaired


def _storable_row(row: EventRow, now: float) -> EventRow:
    kind, task_id, task_name, at, details = row
    fixed = tuple(
        (key, storable_text(value) if isinstance(value, str) else value) for key, value in details
    )
    finite = isinstance(at, int | float) and math.isfinite(at)
    return (kind, storable_text(task_id), storable_text(task_name), at if finite else now, fixed)


def shortened(text: str, limit: int) -> str:
    """``text`` when at most ``limit`` characters long, else ``limit`` characters standing for it.

    Those are its beginning, ``...#`` and 32 hex digits of its SHA-256 digest: two texts that
    differ anywhere stay apart, and shortening a shortened text changes nothing.
    """
    if len(text) <= limit:
        return text
    import hashlib  # imported when used: nearly every process never needs it

    whole = text.encode("utf-8", "surrogatepass")  # a lone surrogate is hashed, not refused
    digest = hashlib.sha256(whole).hexdigest()[:_DIGEST_CHARS]
    return f"{text[: limit - _DIGEST_CHARS - len(_DIGEST_MARK)]}{_DIGEST_MARK}{digest}"


def stored_task_id(task_id: str) -> str:
    """The id a store keeps ``task_id`` under: itself, or `shortened` to `MAX_TASK_ID_CHARS`.

    A message can carry an id of any length (a client's ``with_task_id``, a message written to
    the broker by another program), and a store keeps a task's id several times (with its
    events, in each index; in Redis key names too). `AsyncEventStore.task_events` finds a
    task by its whole id as well as by this one.
    """
    return shortened(task_id, MAX_TASK_ID_CHARS)


def stored_task_name(task_name: str) -> str:
    """The name a store keeps ``task_name`` as: itself, or `shortened` to `MAX_TASK_NAME_CHARS`.

    A `TaskQuery` for the whole name finds the task as well.
    """
    return shortened(task_name, MAX_TASK_NAME_CHARS)


def stored_worker(worker: WorkerId) -> WorkerId:
    """``worker`` as a store keeps it: its host name `shortened` to `MAX_HOST_CHARS`.

    The host is part of each event's and heartbeat's worker id (and, in Redis, of key names);
    a real one fits, a writer that makes its own ids may not. A `TaskQuery` for the whole
    worker id finds its tasks as well.
    """
    if len(worker.host) <= MAX_HOST_CHARS:
        return worker
    return replace(worker, host=shortened(worker.host, MAX_HOST_CHARS))


def quoted(value: object, limit: int = MAX_QUOTED_CHARS) -> str:
    """``repr(value)`` for a log line or an error message, `shortened` to ``limit`` characters.

    For a value taken from a message or a request (a label, a unique key, a form field): a
    5 MB one would make a 5 MB line.
    """
    return shortened(repr(value), limit)


def _why(data: object, error: Exception) -> str:
    """``data`` `quoted` and what is wrong with it, each 512 characters at most.

    Either may hold a field of megabytes read from a store (the error repeats the value it
    refused): the message stays about 1 KB.
    """
    return f"{quoted(data)} ({shortened(str(error), MAX_QUOTED_CHARS)})"


def _stored_error_type(error_type: str) -> str:
    return shortened(error_type, MAX_ERROR_TYPE_CHARS)


def _stored_error_message(message: str) -> str:
    return message[:MAX_ERROR_MESSAGE_CHARS]


def _stored_traceback(text: str) -> str:
    return text[-MAX_TRACEBACK_CHARS:]


#: The bound of each text field of an event a store bounds, and how it cuts a longer one: an
#: error's type is `shortened`, its message keeps its beginning, its traceback its end (as
#: `taskq.event_recorder.EventRecorder.record_error` cuts them); a retry's new task id is kept
#: as its task's events keep it (`stored_task_id`).
_TEXT_BOUNDS = {
    "error_type": (MAX_ERROR_TYPE_CHARS, _stored_error_type),
    "error_message": (MAX_ERROR_MESSAGE_CHARS, _stored_error_message),
    "traceback": (MAX_TRACEBACK_CHARS, _stored_traceback),
    "new_task_id": (MAX_TASK_ID_CHARS, stored_task_id),
}
_TEXT_LIMITS = tuple((key, limit) for key, (limit, _) in _TEXT_BOUNDS.items())
_text_limit = dict(_TEXT_LIMITS).get


def bounded_rows(rows: Sequence[EventRow]) -> Sequence[EventRow]:
    """``rows`` with each task id, task name and error text as a store keeps them.

    Ids and names as `stored_task_id` and `stored_task_name` shorten them (a retry's
    ``new_task_id`` too); an error's type past `MAX_ERROR_TYPE_CHARS` `shortened`, its message
    cut to its first `MAX_ERROR_MESSAGE_CHARS` characters and its traceback to its last
    `MAX_TRACEBACK_CHARS`.
    ``rows`` itself when nothing is too long, as nearly always: that check is one short pass.
    """
    if _rows_fit(rows):
        return rows
    return [
        (kind, _stored_id(task_id), _stored_name(name), at, _bounded_details(details))
        for kind, task_id, name, at, details in rows
    ]


def bounded_events(events: Sequence[TaskEvent]) -> Sequence[TaskEvent]:
    """``events`` bounded as `bounded_rows` bounds rows, each worker too (`stored_worker`)."""
    if _events_fit(events):
        return events
    return [_bounded_event(event) for event in events]


def bounded_heartbeats(heartbeats: Sequence[WorkerHeartbeat]) -> Sequence[WorkerHeartbeat]:
    """``heartbeats`` with each worker (`stored_worker`), broker, queue and version as kept.

    A ``broker``, ``queue`` or ``version`` longer than `MAX_HEARTBEAT_TEXT_CHARS` is kept
    `shortened`. ``heartbeats`` itself when nothing is too long, as nearly always.
    """
    if _heartbeats_fit(heartbeats):
        return heartbeats
    return [_bounded_heartbeat(beat) for beat in heartbeats]


def _heartbeats_fit(heartbeats: Sequence[WorkerHeartbeat]) -> bool:
    """Whether no host, broker, queue or version of ``heartbeats`` is too long."""
    try:
        for beat in heartbeats:
            if len(beat.worker.host) > MAX_HOST_CHARS:
                return False
            for key in _HEARTBEAT_TEXTS:
                if len(getattr(beat, key)) > MAX_HEARTBEAT_TEXT_CHARS:
                    return False
    except (AttributeError, TypeError):  # not a worker id, or not text
        return False
    return True


def _bounded_heartbeat(beat: WorkerHeartbeat) -> WorkerHeartbeat:
    texts = {key: _heartbeat_text(getattr(beat, key)) for key in _HEARTBEAT_TEXTS}
    worker = beat.worker
    return replace(
        beat, worker=stored_worker(worker) if isinstance(worker, WorkerId) else worker, **texts
    )


def _rows_fit(rows: Sequence[EventRow]) -> bool:
    """Whether no id, name or error text of ``rows`` is too long.

    A loop the interpreter runs fast (most rows have no field, or one duration); about as
    fast as checking the ids and names alone in C, in two passes.
    """
    try:
        for _, task_id, task_name, _, details in rows:
            if len(task_id) > MAX_TASK_ID_CHARS or len(task_name) > MAX_TASK_NAME_CHARS:
                return False
            if details:
                for key, value in details:
                    limit = _text_limit(key)
                    if limit is not None and len(value) > limit:
                        return False
    except (TypeError, ValueError):  # not text, or not pairs: each is looked at on its own
        return False
    return True


def _events_fit(events: Sequence[TaskEvent]) -> bool:
    """Whether no id, name, error text or host of ``events`` is too long."""
    worker = None
    try:
        for event in events:
            if event.worker is not worker:  # a batch's events nearly always share theirs
                worker = event.worker
                if len(worker.host) > MAX_HOST_CHARS:
                    return False
            if len(event.task_id) > MAX_TASK_ID_CHARS or len(event.task_name) > MAX_TASK_NAME_CHARS:
                return False
            # failures and retries only
            if event.error_type or event.error_message or event.traceback or event.new_task_id:
                for key, limit in _TEXT_LIMITS:
                    value = getattr(event, key)
                    if value is not None and len(value) > limit:
                        return False
    except (AttributeError, TypeError):  # not a worker id, or not text
        return False
    return True


def _bounded_details(details: Any) -> Any:
    """``details`` with each text field `_TEXT_BOUNDS` names cut to its bound."""
    try:
        return tuple((key, _bounded_text(key, value)) for key, value in details)
    except (TypeError, ValueError):  # not pairs: kept as given, for the store to refuse
        return details


def _bounded_text(key: str, value: Any) -> Any:
    bound = _TEXT_BOUNDS.get(key)
    if bound is None or not isinstance(value, str) or len(value) <= bound[0]:
        return value
    return bound[1](value)


def _bounded_event(event: TaskEvent) -> TaskEvent:
    texts = {key: _bounded_text(key, getattr(event, key)) for key in _TEXT_BOUNDS}
    worker = event.worker
    return replace(
        event,
        task_id=_stored_id(event.task_id),
        task_name=_stored_name(event.task_name),
        worker=stored_worker(worker) if isinstance(worker, WorkerId) else worker,
        **texts,
    )


def _heartbeat_text(text: Any) -> Any:
    return shortened(text, MAX_HEARTBEAT_TEXT_CHARS) if isinstance(text, str) else text


def _stored_id(task_id: Any) -> Any:
    return stored_task_id(task_id) if isinstance(task_id, str) else task_id


def _stored_name(task_name: Any) -> Any:
    return stored_task_name(task_name) if isinstance(task_name, str) else task_name


@contextlib.contextmanager
def reading(what: str) -> Iterator[None]:
    """Turn an error decoding ``what`` read from a store into an `EventStoreError` saying so.

    A store holding data this version did not write (edited by hand, truncated, another
    program's) answers that error, never a `ValueError` or `TypeError` from deep inside.
    """
    try:
        yield
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as error:
        raise EventStoreError(
            f"{what} is not as taskq writes it ({type(error).__name__}: {error})"
        ) from error


def message_text(message: bytes) -> str:
    """A ``sent`` event's message bytes as the base64 text its JSON form holds."""
    return base64.b64encode(message).decode("ascii")


@dataclass(frozen=True)
class WorkerHeartbeat:
    """What a worker process reports every few seconds about itself.

    ``time`` and ``started_at`` are wall-clock Unix seconds; ``broker`` is the broker's class
    name and ``queue`` its queue; ``running`` counts the tasks running now, ``processed``
    and ``failed`` the tasks finished since the start.
    """

    worker: WorkerId
    time: float
    started_at: float
    broker: str
    queue: str
    concurrency: int
    running: int
    processed: int
    failed: int
    version: str

    @property
    def host(self) -> str:
        """The worker's host name."""
        return self.worker.host

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.worker.pid

    def as_dict(self) -> dict[str, Any]:
        """The heartbeat as JSON-ready data (the worker id as its string form)."""
        data = asdict(self)
        data["worker"] = str(self.worker)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerHeartbeat:
        """Rebuild a heartbeat from `as_dict` data; raise `EventStoreError` when it is not one."""
        try:
            fields = dict(data)
            fields["worker"] = WorkerId.parse(fields["worker"])
            beat = cls(**fields)
            numbers = (beat.time, beat.started_at, beat.concurrency, beat.running)
            texts = (beat.broker, beat.queue, beat.version)
            for number in (*numbers, beat.processed, beat.failed):
                if not (isinstance(number, int | float) and math.isfinite(number)):
                    raise TypeError(f"a time or a count is not a finite number: {number!r}")
            if not all(isinstance(text, str) for text in texts):
                raise TypeError("the broker, queue or version is not text")
        except (KeyError, TypeError, ValueError) as error:
            raise EventStoreError(f"not a worker heartbeat: {_why(data, error)}") from None
        return beat


@dataclass(frozen=True)
class TaskSummary:
    """A task as its latest event leaves it: ``state`` is that event's kind.

    ``first_time``/``last_time`` are the times of its earliest and latest retained events;
    ``worker``, ``duration`` and the error fields come from the latest event.
    """

    task_id: str
    task_name: str
    state: EventKind
    worker: WorkerId
    first_time: float
    last_time: float
    duration: float | None = None
    error_type: str | None = None
    error_message: str | None = None

    @classmethod
    def of(cls, events: Sequence[TaskEvent]) -> TaskSummary:
        """The summary a task's events (in order, at least one) leave."""
        latest = events[-1]
        return cls(
            task_id=latest.task_id,
            task_name=latest.task_name,
            state=latest.kind,
            worker=latest.worker,
            first_time=events[0].time,
            last_time=latest.time,
            duration=latest.duration,
            error_type=latest.error_type,
            error_message=latest.error_message,
        )


@dataclass(frozen=True)
class TaskQuery:
    """Which tasks `AsyncEventStore.tasks` returns: every given filter must match.

    ``since``/``until`` bound the time of a task's latest event (``since <= t < until``);
    ``cursor`` is the `TaskPage.cursor` of the previous page. A ``state`` given as its text
    (``"failed"``) and a ``worker`` as ``host:pid:process`` are read as `EventKind` and
    `WorkerId`; what is neither raises `EventStoreError`, as a limit that is not an integer
    of at least 1 does. A ``name`` and a ``worker`` are read as stores keep them
    (`stored_task_name`, `stored_worker`).
    """

    state: EventKind | None = None
    name: str | None = None
    worker: WorkerId | None = None
    since: float | None = None
    until: float | None = None
    limit: int = DEFAULT_PAGE_SIZE
    cursor: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", _state_of(self.state))
        object.__setattr__(self, "worker", _worker_of(self.worker))
        if isinstance(self.name, str):
            object.__setattr__(self, "name", stored_task_name(self.name))
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise EventStoreError(f"a task page holds at least 1 task, got limit={self.limit!r}")
        if self.since != self.since or self.until != self.until:  # NaN bounds nothing
            raise EventStoreError(f"since and until are times, got {self.since}, {self.until}")

    def matches(self, task: TaskSummary) -> bool:
        """Tell whether ``task`` passes the filters (the cursor and limit aside)."""
        return (
            (self.state is None or task.state == self.state)
            and (self.name is None or task.task_name == self.name)
            and (self.worker is None or task.worker == self.worker)
            and (self.since is None or task.last_time >= self.since)
            and (self.until is None or task.last_time < self.until)
        )


def _state_of(state: Any) -> EventKind | None:
    """``state`` as an `EventKind` (None stays None); raise `EventStoreError` when not one."""
    if state is None or isinstance(state, EventKind):
        return state
    try:
        return EventKind(state)
    except ValueError:
        kinds = ", ".join(kind.value for kind in EventKind)
        raise EventStoreError(f"not a state: {quoted(state)} (one of {kinds})") from None


def _worker_of(worker: Any) -> WorkerId | None:
    """``worker`` as a store keeps it (read from ``host:pid:process`` text; None stays None)."""
    found = WorkerId.parse(worker) if isinstance(worker, str) else worker
    return stored_worker(found) if isinstance(found, WorkerId) else found


#: The query with no filter: the first page of the latest tasks.
LATEST_TASKS = TaskQuery()


@dataclass(frozen=True)
class TaskPage:
    """One page of tasks, latest first; ``cursor`` fetches the next page (None: no more)."""

    tasks: list[TaskSummary]
    cursor: str | None = None


def page_cursor(task: TaskSummary) -> str:
    """The cursor of the page that follows ``task`` (tasks order by latest event time, then id)."""
    return f"{task.last_time!r}|{task.task_id}"


def read_cursor(cursor: str) -> tuple[float, str]:
    """The (last time, task id) a cursor from `page_cursor` continues after."""
    last_time, sep, task_id = cursor.partition("|")
    try:
        moment = float(last_time)
        if not sep or moment != moment:  # NaN: no time
            raise ValueError(cursor)
        return moment, task_id
    except ValueError:
        raise EventStoreError(f"not a task page cursor: {quoted(cursor)}") from None


@dataclass(frozen=True)
class MinuteRate:
    """How many events of each kind happened in the minute starting at ``minute`` (Unix s)."""

    minute: int
    counts: Mapping[EventKind, int] = field(default_factory=dict)

    def count(self, *kinds: EventKind) -> int:
        """The number of events of the given kinds in this minute."""
        return sum(self.counts.get(kind, 0) for kind in kinds)


def minute_of(timestamp: float) -> int:
    """The start (Unix seconds) of the minute holding ``timestamp``."""
    return int(timestamp // 60) * 60


def last_minutes(minutes: int, now: float) -> list[int]:
    """The starts of the last ``minutes`` minutes, oldest first, the one holding ``now`` last."""
    current = minute_of(now)
    return [current - 60 * back for back in range(minutes - 1, -1, -1)]


@dataclass(frozen=True)
class WorkerStatus:
    """A worker's latest heartbeat and whether it came within the staleness threshold.

    ``clock_ahead``: the heartbeat is dated more than the threshold after the time it was
    judged at, so its host's clock runs ahead (or the reader's behind) and whether the worker
    still runs cannot be told from it: it does not count as alive.
    """

    heartbeat: WorkerHeartbeat
    alive: bool
    clock_ahead: bool = False

    @classmethod
    def judged(cls, heartbeat: WorkerHeartbeat, stale_after: float, now: float) -> WorkerStatus:
        """The status of ``heartbeat`` at ``now``: alive if dated within ``stale_after`` of it.

        Within either way: a heartbeat dated further ahead than ``stale_after`` is
        ``clock_ahead``, not alive (taken as alive, a worker whose clock ran an hour ahead
        would look alive for an hour after it stopped).
        """
        age = now - heartbeat.time
        ahead = age < -stale_after
        return cls(heartbeat, not ahead and age <= stale_after, ahead)

    @property
    def last_seen(self) -> float:
        """When the worker last reported (Unix seconds)."""
        return self.heartbeat.time


@dataclass(frozen=True)
class Retention:
    """How much an event store keeps: at most ``max_events`` events, none older than ``max_age``.

    Retention works by whole tasks: when over either bound, the store drops the tasks whose
    latest event is oldest, with all their events, so a task's history is never cut in two.
    Rates per minute are kept for ``max_age`` seconds; heartbeats until ``max_age`` old.
    """

    max_events: int = DEFAULT_MAX_EVENTS
    max_age: float = DEFAULT_MAX_AGE_S

    def __post_init__(self) -> None:
        try:
            check_count("max_events", self.max_events)
            check_seconds("max_age", self.max_age)
        except ValueError as exc:
            raise EventStoreError(f"retention: {exc}") from None
