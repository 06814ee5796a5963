"""`SQLiteFile`: one process's connection to a SQLite file, used from a thread of its own.

The SQLite parts of taskq (the event store; the result backend and the stores of
taskq-result-backends) each hold one: the event loop never waits for the disk or a lock, a
forked child opens its own connection, and SQLite's errors become the typed ones of the part.
A file removed or replaced under an open connection is opened anew at the connection's next
use. New files keep the pages that deletions free apart, so that `give_back_free_pages` can
return them to the file system.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from taskq.checks import MAX_INT32_MS_S, check_seconds

_T = TypeVar("_T")

logger = logging.getLogger("taskq.sqlite")

#: Seconds between two attempts to open a file that another process is setting up.
OPEN_RETRY_S = 0.01
#: Bytes the ``-wal`` file is cut back to once it is written from its start again: a long
#: read transaction lets it grow past its usual few megabytes, and SQLite keeps that size.
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
#: Pages one `give_back_free_pages` returns to the file system at most (16 MiB of 4 KiB pages),
#: so that no single write pays for shrinking a large file.
FREE_PAGES_PER_SHRINK = 4096

#: Connections a forked child inherited: kept referenced so that the child never closes them
#: (SQLite must not use a connection across fork(), and closing one is a use).
_INHERITED: list[sqlite3.Connection] = []

#: What a SQLite file turns into the error of its part: the failure, and the file.
FailureType = Callable[[Exception, "SQLiteFile"], Exception]


class SQLiteFile:
    """The file at ``path`` with the tables of ``schema``, opened on first use in WAL mode.

    ``busy_timeout_s`` is how long a statement waits for another connection's write lock;
    ``what`` names the database in messages ("the SQLite result database"); ``failure``
    makes the error `run` raises from SQLite's (or from text or a number SQLite cannot take).

    Raises:
        ValueError: ``busy_timeout_s`` is not a finite number of seconds above 0 and at most
            2,147,483.647 (SQLite counts it in milliseconds in a C int).
    """

    def __init__(
        self, path: str, busy_timeout_s: float, schema: str, what: str, failure: FailureType
    ) -> None:
        self.path = path
        self.busy_timeout_s = check_seconds(
            "busy_timeout_s", busy_timeout_s, maximum=MAX_INT32_MS_S
        )
        self.schema = schema
        self.what = what
        self.failure = failure
        self._connection: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pid = os.getpid()
        self._file: tuple[int, int] | None = None  # the (device, inode) the connection opened

    async def run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` with the connection in the file's thread, opening it first if needed.

        Raises:
            Exception: What ``failure`` makes of SQLite's error.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread(), self._with_connection, work)

    async def close(self) -> None:
        """Close the connection and stop its thread; the next `run` opens them again."""
        executor = self._executor
        if executor is None or self._pid != os.getpid():
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close)
        finally:
            executor.shutdown(wait=False)
            self._executor = None

    def _thread(self) -> ThreadPoolExecutor:
        if self._pid != os.getpid():
            # Forked: the thread did not survive, and the inherited connection must stay unused.
            if self._connection is not None:
                _INHERITED.append(self._connection)
            self._connection, self._executor, self._pid = None, None, os.getpid()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskq-sqlite")
        return self._executor

    def _with_connection(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        path = self.path
        try:
            if self._connection is not None and _file_of(path) != self._file:
                logger.warning("%s %r was removed or replaced: opening it anew", self.what, path)
                self._close()
            if self._connection is None:
                self._connection = _connect(path, self.busy_timeout_s, self.schema)
                self._file = _file_of(path)
            return work(self._connection)
        # text that is not valid Unicode, an integer past 64 bits: SQLite cannot take them
        except (sqlite3.Error, UnicodeEncodeError, OverflowError) as exc:
            raise self.failure(exc, self) from exc

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def give_back_free_pages(connection: sqlite3.Connection) -> None:
    """Shrink the file when over a quarter of its pages are free (after deletions).

    Free pages are reused by later writes, so an eighth of the file is kept free; at most
    `FREE_PAGES_PER_SHRINK` pages go at a time. A file made before SQLite's incremental
    vacuum was switched on (``auto_vacuum`` 0) is left as it is.
    """
    free = connection.execute("PRAGMA freelist_count").fetchone()[0]
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    if free > pages // 4:
        surplus = min(free - pages // 8, FREE_PAGES_PER_SHRINK)
        # one step frees one page: the statement runs to its end through executescript
        connection.executescript(f"PRAGMA incremental_vacuum({int(surplus)});")


def is_busy_error(exc: Exception) -> bool:
    """Whether ``exc`` says that another connection holds the lock."""
    text = str(exc)
    return "locked" in text or "busy" in text


def _connect(path: str, busy_timeout_s: float, schema: str) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode (one statement, one transaction) and create the tables.

    While another process opens the same new file, switching it to WAL can fail at once with
    "database is locked": SQLite does not wait there, as waiting could deadlock. Opening is
    then tried again until ``busy_timeout_s`` has passed.
    """
    deadline = time.monotonic() + busy_timeout_s
    while True:
        connection = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            if connection.execute("PRAGMA page_count").fetchone()[0] == 0:
                # a new file (set before its first table): pages freed by deletions can then
                # be given back to the file system (`give_back_free_pages`)
                connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
            connection.executescript(schema)
        except sqlite3.OperationalError as exc:
            connection.close()
            if not is_busy_error(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(OPEN_RETRY_S)
        except BaseException:
            connection.close()
            raise
        else:
            return connection


def _file_of(path: str) -> tuple[int, int] | None:
    """The (device, inode) ``path`` names now; None when there is no such file.

    A connection writes on into a file removed (or replaced) under it, where no other
    process reads (and a unique key claimed there is held twice): compared before each use,
    a change opens the path anew.
    """
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino
