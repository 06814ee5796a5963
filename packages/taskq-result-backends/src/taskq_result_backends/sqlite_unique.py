"""`SQLiteUniqueStore`: unique task keys in a SQLite file, for the processes of one host."""

from __future__ import annotations

import os
import sqlite3
import time

from taskq.abc.unique_store import UniqueKeyStore, stored_key
from taskq_result_backends.sqlite_file import result_file

#: Seconds a statement waits for another connection's write lock before giving up.
DEFAULT_BUSY_TIMEOUT_S = 5.0

UNIQUE_KEYS = "taskq_unique_keys"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {UNIQUE_KEYS} (
    key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""


class SQLiteUniqueStore(UniqueKeyStore):
    """Holds unique task keys in a SQLite file that every process of the host opens.

    ``broker.with_unique_store(SQLiteUniqueStore("unique.sqlite3"))``. A claim is one write
    transaction, so of many processes claiming one key at once exactly one gets it; an
    expired key is taken over by the next claim. A key is stored as its `stored_key` form (a
    long one as its digest). The file may be the result backend's (the
    tables differ).

    Args:
        path: The database file, created with its table on first use.
        busy_timeout_s: Seconds a statement waits for another connection's write lock, at
            most 2,147,483.647 (SQLite counts it in milliseconds in a C int).

    Raises:
        ValueError: ``busy_timeout_s`` is not positive, or above its maximum.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "taskq-unique.sqlite3",
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        self.path = os.fspath(path)
        self._file = result_file(
            self.path, busy_timeout_s, _SCHEMA, "the SQLite unique key database"
        )

    async def startup(self) -> None:
        """Open the database (creating the file and its table); a bad path fails here."""
        await self._file.run(lambda connection: None)

    async def claim(self, key: str, task_id: str, ttl_s: float) -> str | None:
        """Hold ``key`` for ``task_id`` unless it is held (see `UniqueKeyStore.claim`).

        Raises:
            ResultStoreUnavailableError: The file cannot be opened or created.
            ResultStoreBusyError: The database stayed locked longer than ``busy_timeout_s``.
        """
        key = stored_key(key)

        def claim(connection: sqlite3.Connection) -> str | None:
            now = time.time()
            connection.execute("BEGIN IMMEDIATE")
            try:
                row = connection.execute(
                    f"SELECT task_id FROM {UNIQUE_KEYS} WHERE key = ? AND expires_at > ?",
                    (key, now),
                ).fetchone()
                if row is None:
                    connection.execute(
                        f"INSERT OR REPLACE INTO {UNIQUE_KEYS} VALUES (?, ?, ?)",
                        (key, task_id, now + ttl_s),
                    )
            finally:
                connection.execute("COMMIT")
            return None if row is None or row[0] == task_id else str(row[0])

        return await self._file.run(claim)

    async def release(self, key: str, task_id: str) -> None:
        """Free ``key`` if ``task_id`` holds it."""
        key = stored_key(key)
        await self._file.run(
            lambda connection: connection.execute(
                f"DELETE FROM {UNIQUE_KEYS} WHERE key = ? AND task_id = ?", (key, task_id)
            )
        )

    async def shutdown(self) -> None:
        """Close the connection and stop its thread."""
        await self._file.close()
