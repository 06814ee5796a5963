"""The result backends as the conformance suite tests them, one factory per backend.

``pytest --pyargs taskq_conformance --taskq-result-backend
taskq_result_backends.conformance:make_sqlite_backend`` (or ``:make_redis_backend``);
``--taskq-unique-store taskq_result_backends.conformance:make_sqlite_unique_store``;
``--taskq-cancellation-store taskq_result_backends.conformance:make_sqlite_cancellation_store``.

The suite's cross-process check runs the same factory in a child process, which must reach
the same store. So the first call in a process chooses the store of the run and exports it
in an environment variable that child processes inherit: ``TASKQ_CONFORMANCE_SQLITE`` (the
database file) and ``TASKQ_CONFORMANCE_REDIS_PREFIX`` (the key prefix). Set them yourself to
choose; otherwise the process that chose deletes the store at exit (for Redis, see
`taskq_redis.testing.run_prefix`). ``TASKQ_REDIS_URL`` names the Redis server (default
``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

from taskq_result_backends.sqlite import SQLiteResultBackend
from taskq_result_backends.sqlite_cancellation import SQLiteCancellationStore
from taskq_result_backends.sqlite_unique import SQLiteUniqueStore

if TYPE_CHECKING:
    from taskq_result_backends.redis import RedisResultBackend

SQLITE_PATH_ENV = "TASKQ_CONFORMANCE_SQLITE"
REDIS_PREFIX_ENV = "TASKQ_CONFORMANCE_REDIS_PREFIX"


def make_sqlite_backend() -> SQLiteResultBackend[Any]:
    """A backend on the run's database: a file in a fresh temporary directory by default."""
    path = os.environ.get(SQLITE_PATH_ENV)
    if not path:
        directory = tempfile.mkdtemp(prefix="taskq-conformance-sqlite-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        path = os.environ[SQLITE_PATH_ENV] = os.path.join(directory, "results.sqlite3")
    return SQLiteResultBackend(path)


def make_redis_backend() -> RedisResultBackend[Any]:
    """A backend on ``TASKQ_REDIS_URL`` under the run's key prefix (fresh by default)."""
    from taskq_redis.testing import run_prefix, server_url
    from taskq_result_backends.redis import RedisResultBackend

    url = server_url()
    return RedisResultBackend(url, prefix=run_prefix(REDIS_PREFIX_ENV, url))


def make_sqlite_unique_store() -> SQLiteUniqueStore:
    """A unique key store on the run's database (the result backend's file, another table)."""
    make_sqlite_backend()  # chooses the run's file
    return SQLiteUniqueStore(os.environ[SQLITE_PATH_ENV])


def make_sqlite_cancellation_store() -> SQLiteCancellationStore:
    """A cancellation store on the run's database (the result backend's file, another table)."""
    make_sqlite_backend()  # chooses the run's file
    return SQLiteCancellationStore(os.environ[SQLITE_PATH_ENV])
