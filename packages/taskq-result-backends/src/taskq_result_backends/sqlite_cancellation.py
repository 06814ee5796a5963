"""`SQLiteCancellationStore`: cancellations in a SQLite file, for the processes of one host."""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import time
from collections.abc import AsyncGenerator
from typing import ClassVar

from taskq.abc.cancellation import DEFAULT_CANCELLATION_TTL_S, Cancellation, CancellationStore
from taskq.capabilities import Capability
from taskq.toolkit import check_seconds
from taskq_result_backends.sqlite_file import result_file

#: Seconds between two looks of a listener for new cancellations.
DEFAULT_POLL_INTERVAL_S = 0.25
#: Seconds a statement waits for another connection's write lock before giving up.
DEFAULT_BUSY_TIMEOUT_S = 5.0
#: Expired rows one write deletes at most.
PURGE_BATCH = 1000

CANCELLATIONS = "taskq_cancellations"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {CANCELLATIONS} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT UNIQUE NOT NULL,
    reason TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS {CANCELLATIONS}_expires_at ON {CANCELLATIONS} (expires_at);
"""


class SQLiteCancellationStore(CancellationStore):
    """Records cancellations in a SQLite file that every process of the host opens.

    Each cancellation is a row numbered in the order it was written; listeners look for
    rows numbered above the last one they saw every ``poll_interval_s`` seconds, so a
    running task hears of its cancellation within that time. The file may be the result
    backend's (the tables differ).

    Args:
        path: The database file, created with its table on first use.
        ttl_s: Seconds a cancellation is kept (default 31 days: the longest delay, and a
            day).
        poll_interval_s: Seconds between two looks of a listener (default 0.25).
        busy_timeout_s: Seconds a statement waits for another connection's write lock, at
            most 2,147,483.647 (SQLite counts it in milliseconds in a C int).

    Raises:
        ValueError: ``ttl_s``, ``poll_interval_s`` or ``busy_timeout_s`` is not positive
            (or ``busy_timeout_s`` above its maximum).
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.CROSS_PROCESS})

    def __init__(
        self,
        path: str | os.PathLike[str] = "taskq-cancellations.sqlite3",
        ttl_s: float = DEFAULT_CANCELLATION_TTL_S,
        *,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        super().__init__(ttl_s)
        check_seconds("poll_interval_s", poll_interval_s)
        self.path = os.fspath(path)
        self.poll_interval_s = poll_interval_s
        self._file = result_file(
            self.path, busy_timeout_s, _SCHEMA, "the SQLite cancellation database"
        )

    async def startup(self) -> None:
        """Open the database (creating the file and its table); a bad path fails here."""
        await self._file.run(lambda connection: None)

    async def shutdown(self) -> None:
        """Close the connection and stop its thread."""
        await self._file.close()

    async def cancel(self, task_id: str, reason: str = "") -> None:
        """Write the cancellation as the newest row (and drop some expired ones)."""
        now = time.time()

        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                f"INSERT OR REPLACE INTO {CANCELLATIONS} (task_id, reason, expires_at)"
                " VALUES (?, ?, ?)",
                (task_id, reason, now + self.ttl_s),
            )
            connection.execute(
                f"DELETE FROM {CANCELLATIONS} WHERE seq IN"
                f" (SELECT seq FROM {CANCELLATIONS} WHERE expires_at <= ? LIMIT ?)",
                (now, PURGE_BATCH),
            )

        await self._file.run(write)

    async def cancellation(self, task_id: str) -> Cancellation | None:
        """Return the unexpired cancellation of ``task_id``, or None."""
        now = time.time()

        def read(connection: sqlite3.Connection) -> Cancellation | None:
            row = connection.execute(
                f"SELECT reason FROM {CANCELLATIONS} WHERE task_id = ? AND expires_at > ?",
                (task_id, now),
            ).fetchone()
            return None if row is None else Cancellation(task_id, str(row[0]))

        return await self._file.run(read)

    async def listen(self) -> AsyncGenerator[Cancellation, None]:
        """Return the cancellations written from now on, looked for every ``poll_interval_s``."""

        def newest(connection: sqlite3.Connection) -> int:
            row = connection.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {CANCELLATIONS}")
            return int(row.fetchone()[0])

        return self._poll(await self._file.run(newest))

    async def _poll(self, seen: int) -> AsyncGenerator[Cancellation, None]:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            rows = await self._file.run(functools.partial(_rows_after, seen=seen))
            for seq, task_id, reason in rows:
                seen = max(seen, seq)
                yield Cancellation(task_id, reason)


def _rows_after(connection: sqlite3.Connection, *, seen: int) -> list[tuple[int, str, str]]:
    rows = connection.execute(
        f"SELECT seq, task_id, reason FROM {CANCELLATIONS} WHERE seq > ? ORDER BY seq", (seen,)
    ).fetchall()
    return [(int(seq), str(task_id), str(reason)) for seq, task_id, reason in rows]
