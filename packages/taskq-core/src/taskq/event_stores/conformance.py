"""The event stores of core as the conformance suite tests them, one factory per store.

``pytest --pyargs taskq_conformance --taskq-event-store
taskq.event_stores.conformance:make_sqlite_store`` (or ``:make_memory_store``).

The suite's cross-process check runs the same factory in a child process, which must reach the
same file. So the first call in a process chooses the file of the run and exports it in
``TASKQ_CONFORMANCE_EVENTS_SQLITE``, which child processes inherit; set it yourself to choose,
otherwise the process that chose deletes the file's directory at exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from taskq.event_stores.memory import InMemoryEventStore
from taskq.event_stores.sqlite import SQLiteEventStore

SQLITE_PATH_ENV = "TASKQ_CONFORMANCE_EVENTS_SQLITE"


def make_memory_store() -> InMemoryEventStore:
    """A fresh in-memory store."""
    return InMemoryEventStore()


def make_sqlite_store() -> SQLiteEventStore:
    """A store on the run's database: a file in a fresh temporary directory by default."""
    path = os.environ.get(SQLITE_PATH_ENV)
    if not path:
        directory = tempfile.mkdtemp(prefix="taskq-conformance-events-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        path = os.environ[SQLITE_PATH_ENV] = os.path.join(directory, "events.sqlite3")
    return SQLiteEventStore(path)
