"""`SQLiteResultBackend`: results in one SQLite file, shared by the processes of one host."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from taskq.abc.result_backend import DEFAULT_RESULT_TTL_S, AsyncResultBackend
from taskq.abc.serializer import TaskiqSerializer
from taskq.capabilities import Capability
from taskq.exceptions import ResultGetError
from taskq.progress import TaskProgress
from taskq.result import TaskiqResult
from taskq.toolkit import check_seconds, give_back_free_pages
from taskq_result_backends._codec import (
    decode_progress,
    decode_result,
    encode_progress,
    encode_result,
    serializer_or_default,
)
from taskq_result_backends.sqlite_file import result_file
from taskq_result_backends.ttl import CheckedResultTTL

_ReturnType = TypeVar("_ReturnType")
_T = TypeVar("_T")
#: What SQLite returns for a column.
SQLValue = bytes | str | int | float | None

#: Seconds a statement waits for another connection's write lock before giving up.
DEFAULT_BUSY_TIMEOUT_S = 5.0
#: Seconds between two purges of expired rows; a purge runs after a write, when one is due.
DEFAULT_PURGE_INTERVAL_S = 60.0
#: Rows one purge deletes at most per table, so that no single write pays for a large backlog.
PURGE_BATCH = 1000
#: First pause of `SQLiteResultBackend.wait_ready`; it doubles up to the caller's interval.
FIRST_POLL_S = 0.01

RESULTS = "taskq_results"
PROGRESS = "taskq_progress"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {RESULTS} (
    task_id TEXT PRIMARY KEY NOT NULL,
    payload BLOB NOT NULL,
    stored_at REAL NOT NULL,
    expires_at REAL
);
CREATE INDEX IF NOT EXISTS {RESULTS}_expires_at
    ON {RESULTS} (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS {PROGRESS} (
    task_id TEXT PRIMARY KEY NOT NULL,
    payload BLOB NOT NULL,
    stored_at REAL NOT NULL,
    expires_at REAL
);
CREATE INDEX IF NOT EXISTS {PROGRESS}_expires_at
    ON {PROGRESS} (expires_at) WHERE expires_at IS NOT NULL;
"""


class SQLiteResultBackend(CheckedResultTTL, AsyncResultBackend[_ReturnType]):
    """Stores results and progress reports in a SQLite file, with the standard library only.

    Every process that opens the same file shares the results: the embedded choice for a
    worker pool and its clients on one host. The database runs in WAL mode (readers never
    wait for the writer) with ``synchronous=NORMAL``: a stored result survives a crash of
    any process; a power cut may lose the last few. Each backend holds one connection, used
    from one thread of its own, so the event loop never waits for the disk or a lock.

    SQLite cannot tell another process that a row was written, so `wait_ready` polls (see
    there) and ``Capability.NOTIFY`` is not declared.

    Args:
        path: The database file, created with its tables on first use (its directory must
            exist). Processes giving the same path share results.
        result_ttl: Seconds a result or progress report is kept: one day by default; None
            keeps it forever. An expired row is never returned and is purged later. The
            attribute may be changed at any time; it applies to what is stored afterwards.
        serializer: Encodes results (default: taskq's `JSONSerializer`). Every process using
            the file must use the same one.
        busy_timeout_s: Seconds a statement waits for another connection's write lock before
            `ResultStoreBusyError` is raised, at most 2,147,483.647 (SQLite counts it in
            milliseconds in a C int). Default 5.
        purge_interval_s: Seconds between two purges of expired rows; a purge runs after a
            write and deletes at most ``PURGE_BATCH`` rows per table. Default 60.

    Raises:
        ValueError: ``result_ttl``, ``busy_timeout_s`` or ``purge_interval_s`` is not positive
            (or ``busy_timeout_s`` above its maximum).
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.PROGRESS, Capability.TTL, Capability.CROSS_PROCESS}
    )

    def __init__(
        self,
        path: str | os.PathLike[str] = "taskq-results.sqlite3",
        result_ttl: float | None = DEFAULT_RESULT_TTL_S,
        serializer: TaskiqSerializer | None = None,
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        purge_interval_s: float = DEFAULT_PURGE_INTERVAL_S,
    ) -> None:
        check_seconds("purge_interval_s", purge_interval_s)
        self.path = os.fspath(path)
        self.result_ttl = result_ttl
        self.serializer = serializer_or_default(serializer)
        self.busy_timeout_s = busy_timeout_s
        self.purge_interval_s = purge_interval_s
        self._file = result_file(self.path, busy_timeout_s, _SCHEMA, "the SQLite result database")
        self._next_purge = 0.0  # time.monotonic() from which a write purges; used in the thread

    async def startup(self) -> None:
        """Open the database (creating the file and tables); a bad path fails here.

        Raises:
            ResultStoreUnavailableError: The file cannot be opened or created.
            ResultStoreBusyError: The database stayed locked longer than ``busy_timeout_s``.
        """
        await self._run(lambda connection: None)

    async def shutdown(self) -> None:
        """Close the connection and stop its thread; the backend reopens on its next use."""
        await self._file.close()

    async def set_result(self, task_id: str, result: TaskiqResult[_ReturnType]) -> None:
        """Store ``result`` under ``task_id``, replacing an earlier one.

        Raises:
            SerializationError: The result cannot be encoded by the serializer.
            ResultStoreBusyError: The database stayed locked longer than ``busy_timeout_s``.
        """
        payload = encode_result(self.serializer, task_id, result)
        await self._write(RESULTS, task_id, payload)

    async def is_result_ready(self, task_id: str) -> bool:
        """Tell whether an unexpired result is stored for ``task_id``."""
        return await self._read(RESULTS, task_id) is not None

    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[_ReturnType]:
        """Return the stored result of ``task_id`` (its log only when ``with_logs``).

        Raises:
            ResultGetError: No unexpired result is stored, or it cannot be decoded.
        """
        payload = await self._read(RESULTS, task_id)
        if payload is None:
            raise ResultGetError(f"no result is stored for task {task_id} (or it expired)")
        what = f"the stored result of task {task_id}"
        return decode_result(self.serializer, task_id, _as_bytes(payload, what), with_logs)

    async def set_progress(self, task_id: str, progress: TaskProgress[Any]) -> None:
        """Store the latest progress report of ``task_id`` (kept for ``result_ttl`` too).

        Raises:
            SerializationError: The report's metadata cannot be encoded by the serializer.
        """
        payload = encode_progress(self.serializer, task_id, progress)
        await self._write(PROGRESS, task_id, payload)

    async def get_progress(self, task_id: str) -> TaskProgress[Any] | None:
        """Return the latest unexpired progress report of ``task_id``, or None."""
        payload = await self._read(PROGRESS, task_id)
        if payload is None:
            return None
        what = f"the stored progress of task {task_id}"
        return decode_progress(self.serializer, task_id, _as_bytes(payload, what))

    async def wait_ready(self, task_id: str, timeout: float | None, check_interval: float) -> bool:
        """Wait until a result for ``task_id`` is stored; False when ``timeout`` s passed first.

        Polls: first after ``FIRST_POLL_S`` seconds, then twice as long each time, up to
        ``check_interval`` seconds, so short tasks are seen soon and long ones cost little.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = min(FIRST_POLL_S, check_interval)
        while not await self.is_result_ready(task_id):
            sleep = pause
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                sleep = min(pause, remaining)
            await asyncio.sleep(sleep)
            pause = min(pause * 2, check_interval)
        return True

    # -- the connection's thread -------------------------------------------------------------

    async def _write(self, table: str, task_id: str, payload: bytes) -> None:
        now = time.time()
        expires_at = None if self.result_ttl is None else now + self.result_ttl

        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                f"INSERT OR REPLACE INTO {table} (task_id, payload, stored_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (task_id, payload, now, expires_at),
            )
            if time.monotonic() >= self._next_purge:
                self._purge(connection, now)

        await self._run(write)

    async def _read(self, table: str, task_id: str) -> SQLValue:
        """The payload column of ``task_id``'s unexpired row, as SQLite returns it; None if none."""
        now = time.time()

        def read(connection: sqlite3.Connection) -> SQLValue:
            row = connection.execute(
                f"SELECT payload FROM {table}"
                " WHERE task_id = ? AND (expires_at IS NULL OR expires_at > ?)",
                (task_id, now),
            ).fetchone()
            return None if row is None else row[0]

        return await self._run(read)

    def _purge(self, connection: sqlite3.Connection, now: float) -> None:
        """Delete expired rows, at most ``PURGE_BATCH`` per table; due again soon if more are.

        A purge that deleted rows shrinks the file when much of it is free.
        """
        backlog = False
        deleted = 0
        for table in (RESULTS, PROGRESS):
            in_table = connection.execute(
                f"DELETE FROM {table} WHERE rowid IN"
                f" (SELECT rowid FROM {table} WHERE expires_at <= ? LIMIT ?)",
                (now, PURGE_BATCH),
            ).rowcount
            deleted += in_table
            backlog = backlog or in_table >= PURGE_BATCH
        if deleted:
            give_back_free_pages(connection)
        self._next_purge = time.monotonic() + (0.0 if backlog else self.purge_interval_s)

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` with the connection in the backend's thread, opening it first if needed."""
        return await self._file.run(work)


def _as_bytes(payload: SQLValue, what: str) -> bytes:
    """A payload column as bytes: a BLOB as is, TEXT (written by another program) as UTF-8.

    Raises:
        ResultGetError: The column holds a number: not something a backend stored.
    """
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    raise ResultGetError(
        f"{what} is not bytes but a SQL {type(payload).__name__}: was it written by "
        "something else than SQLiteResultBackend?"
    )
