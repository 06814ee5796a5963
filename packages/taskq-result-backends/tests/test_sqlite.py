"""SQLiteResultBackend: round trips, TTL, progress, errors, several processes, concurrency."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from taskq import (
    Capability,
    ProgressTracker,
    RemoteTaskError,
    ResultGetError,
    ResultSetError,
    SerializationError,
    TaskiqDepends,
    TaskiqResult,
    TaskiqSerializer,
    TaskProgress,
    TaskState,
    UnknownTaskError,
    sqlite_file,
)
from taskq.exceptions import ResultBackendError
from taskq.testing import eventually
from taskq_inmemory import InMemoryBroker
from taskq_result_backends import (
    ResultStoreBusyError,
    ResultStoreUnavailableError,
    SQLiteResultBackend,
)

#: Seconds allowed for what must happen "now" on a loaded two-core machine.
PROMPT = 10.0


def success(value: Any, **extra: Any) -> TaskiqResult[Any]:
    return TaskiqResult(is_err=False, return_value=value, execution_time=0.5, **extra)


@pytest.fixture
async def backend(sqlite_path):
    backend = SQLiteResultBackend(sqlite_path)
    await backend.startup()
    yield backend
    await backend.shutdown()


def count_rows(path: str, table: str) -> int:
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        return int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


# -- round trips -------------------------------------------------------------------------------


async def test_result_round_trip_with_labels_and_log(backend):
    labels = {"text": "é", "n": 3, "nested": {"a": [1, 2]}}
    await backend.set_result("t1", success({"answer": 42}, labels=labels, log="one\ntwo"))
    assert await backend.is_result_ready("t1")
    result = await backend.get_result("t1")
    assert result.is_err is False
    assert result.return_value == {"answer": 42}
    assert result.labels == labels
    assert result.execution_time == pytest.approx(0.5)
    assert result.log == "one\ntwo"
    assert (await backend.get_result("t1", with_logs=False)).log is None


async def test_a_second_result_replaces_the_first(backend):
    await backend.set_result("t", success(1))
    await backend.set_result("t", success(2))
    assert (await backend.get_result("t")).return_value == 2
    assert count_rows(backend.path, "taskq_results") == 1


async def test_unknown_id_is_not_ready_and_has_no_progress(backend):
    assert not await backend.is_result_ready("missing")
    with pytest.raises(ResultGetError, match="missing"):
        await backend.get_result("missing")
    assert await backend.get_progress("missing") is None


async def test_error_results_come_back_as_their_exception_types(backend):
    await backend.set_result(
        "value",
        TaskiqResult(is_err=True, return_value=None, execution_time=0, error=ValueError("bad")),
    )
    taskq_error = UnknownTaskError(task_name="pkg:job")
    await backend.set_result(
        "taskq", TaskiqResult(is_err=True, return_value=None, execution_time=0, error=taskq_error)
    )
    foreign = type("NotImportedError", (Exception,), {"__module__": "nowhere.at.all"})
    await backend.set_result(
        "foreign",
        TaskiqResult(is_err=True, return_value=None, execution_time=0, error=foreign("x")),
    )

    value = await backend.get_result("value")
    assert value.is_err
    with pytest.raises(ValueError, match="bad"):
        value.raise_for_error()
    rebuilt = (await backend.get_result("taskq")).error
    assert isinstance(rebuilt, UnknownTaskError)
    assert rebuilt.task_name == "pkg:job"
    unknown = (await backend.get_result("foreign")).error
    assert isinstance(unknown, RemoteTaskError)
    assert unknown.type_name == "nowhere.at.all.NotImportedError"


async def test_one_mebibyte_result(backend):
    value = "x" * (1024 * 1024)
    await backend.set_result("big", success(value))
    assert (await backend.get_result("big")).return_value == value


async def test_capabilities():
    assert SQLiteResultBackend.capabilities == {
        Capability.PROGRESS,
        Capability.TTL,
        Capability.CROSS_PROCESS,
    }


# -- progress and TTL ----------------------------------------------------------------------------


async def test_progress_keeps_the_latest_report(backend):
    await backend.set_progress("p", TaskProgress(TaskState.STARTED, {"done": 1}))
    await backend.set_progress("p", TaskProgress("custom", {"done": 2}))
    progress = await backend.get_progress("p")
    assert progress == TaskProgress("custom", {"done": 2})
    await backend.set_progress("p", TaskProgress(TaskState.SUCCESS))
    assert (await backend.get_progress("p")).state is TaskState.SUCCESS


async def test_results_and_progress_expire_after_the_ttl(sqlite_path):
    backend = SQLiteResultBackend(sqlite_path, result_ttl=0.3)
    await backend.startup()
    await backend.set_result("short", success(1))
    await backend.set_progress("short", TaskProgress(TaskState.STARTED))
    assert await backend.is_result_ready("short")
    await asyncio.sleep(0.6)
    assert not await backend.is_result_ready("short")
    with pytest.raises(ResultGetError, match="expired"):
        await backend.get_result("short")
    assert await backend.get_progress("short") is None
    await backend.shutdown()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e30, -1])
async def test_a_bad_result_ttl_is_refused_at_init_and_on_assignment(backend, bad):
    # NaN was accepted and stored as a NULL expiry: results silently kept forever
    before = backend.result_ttl
    with pytest.raises(ValueError, match="result_ttl"):
        SQLiteResultBackend(result_ttl=bad)
    with pytest.raises(ValueError, match="result_ttl"):
        backend.result_ttl = bad
    assert backend.result_ttl == before


async def test_result_ttl_can_change_and_applies_to_later_writes(backend):
    await backend.set_result("forever", success(1))
    backend.result_ttl = 0.2
    await backend.set_result("brief", success(2))
    await asyncio.sleep(0.4)
    assert await backend.is_result_ready("forever")
    assert not await backend.is_result_ready("brief")


async def test_expired_rows_are_purged_by_a_later_write(sqlite_path):
    backend = SQLiteResultBackend(sqlite_path, result_ttl=0.1, purge_interval_s=0.1)
    await backend.startup()
    await asyncio.gather(*(backend.set_result(f"old-{i}", success(i)) for i in range(50)))
    await backend.set_progress("old-0", TaskProgress(TaskState.STARTED))
    await asyncio.sleep(0.3)
    backend.result_ttl = None
    await backend.set_result("new", success(0))
    assert count_rows(sqlite_path, "taskq_results") == 1
    assert count_rows(sqlite_path, "taskq_progress") == 0
    await backend.shutdown()


def checkpointed_size(path: str) -> int:
    """The database file's size once the writes in its WAL are in it."""
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Path(path).stat().st_size


async def test_the_file_shrinks_once_expired_results_are_purged(sqlite_path):
    filler = SQLiteResultBackend(sqlite_path, result_ttl=0.1, purge_interval_s=3600)
    await filler.startup()
    big = TaskiqResult(is_err=False, return_value="x" * 4000, execution_time=0.0)
    for start in range(0, 3000, 100):
        await asyncio.gather(
            *(filler.set_result(f"old-{i}", big) for i in range(start, start + 100))
        )
    await filler.shutdown()
    full = checkpointed_size(sqlite_path)
    assert full > 12_000_000
    backend = SQLiteResultBackend(sqlite_path, result_ttl=None, purge_interval_s=0.01)
    await backend.startup()
    written = 0

    async def purged_and_shrunk() -> bool:  # each write purges what expired, then shrinks
        nonlocal written
        await backend.set_result(f"new-{written}", success(written))
        written += 1
        purged = count_rows(sqlite_path, "taskq_results") == written
        return purged and checkpointed_size(sqlite_path) < full / 10

    await eventually(purged_and_shrunk, what="every old result purged and the file shrunk")
    await backend.shutdown()


async def test_results_are_kept_one_day_by_default_and_forever_with_none(sqlite_path):
    backend = SQLiteResultBackend(sqlite_path)
    await backend.startup()
    await backend.set_result("a-day", success(1))
    backend.result_ttl = None
    await backend.set_result("forever", success(2))
    await backend.shutdown()
    with closing(sqlite3.connect(sqlite_path)) as connection:
        rows = dict(connection.execute("SELECT task_id, expires_at - stored_at FROM taskq_results"))
    assert rows == {"a-day": pytest.approx(86_400), "forever": None}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="result_ttl"):
        SQLiteResultBackend(result_ttl=0)
    with pytest.raises(ValueError, match="busy_timeout_s"):
        SQLiteResultBackend(busy_timeout_s=0)


# -- errors ----------------------------------------------------------------------------------------


async def test_an_unencodable_result_raises_serialization_error_and_stores_nothing(backend):
    with pytest.raises(SerializationError, match="task t"):
        await backend.set_result("t", success(object()))
    with pytest.raises(SerializationError):
        await backend.set_progress("t", TaskProgress(TaskState.STARTED, object()))
    assert not await backend.is_result_ready("t")


async def test_a_worker_stores_an_error_when_the_result_cannot_be_encoded(sqlite_path):
    broker = InMemoryBroker().with_result_backend(SQLiteResultBackend(sqlite_path))

    @broker.task
    async def unencodable() -> object:
        return object()

    await broker.startup()
    result = await (await unencodable.kiq()).wait_result(timeout=PROMPT)
    await broker.shutdown()
    assert result.is_err
    assert isinstance(result.error, ResultSetError)


async def test_a_missing_directory_fails_at_startup_with_what_to_do(tmp_path):
    backend = SQLiteResultBackend(tmp_path / "no" / "such" / "dir" / "results.sqlite3")
    with pytest.raises(ResultStoreUnavailableError, match="directory exists"):
        await backend.startup()
    await backend.shutdown()


async def test_a_file_that_is_not_a_database_fails(tmp_path):
    path = tmp_path / "results.sqlite3"
    path.write_bytes(b"this is not a database, " * 100)
    backend = SQLiteResultBackend(path)
    with pytest.raises(ResultStoreUnavailableError, match="SQLite database"):
        await backend.startup()
    await backend.shutdown()


def remove_database(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


def file_size(path: Path) -> int:
    return path.stat().st_size


async def test_a_backend_whose_file_is_removed_stores_into_the_new_file(sqlite_path):
    # an operator removes the file to start afresh: a worker's connection wrote on into the
    # removed file, where no other process could read its results again
    worker = SQLiteResultBackend(sqlite_path)
    await worker.set_result("before", success(1))
    remove_database(sqlite_path)
    client = SQLiteResultBackend(sqlite_path)
    try:
        await client.startup()
        await worker.set_result("after", success(2))
        assert (await client.get_result("after")).return_value == 2
        assert not await client.is_result_ready("before")
    finally:
        await worker.shutdown()
        await client.shutdown()


@pytest.mark.parametrize("task_id", ["a\udc80", "\ud800"])
async def test_a_task_id_that_is_not_valid_unicode_is_a_result_backend_error(backend, task_id):
    # JSON can carry "\\udc80": a message's task id may hold a lone surrogate
    for call in (
        backend.set_result(task_id, success(1)),
        backend.get_result(task_id),
        backend.is_result_ready(task_id),
    ):
        with pytest.raises(ResultBackendError, match="not valid Unicode"):
            await call
    await backend.set_result("fine", success(1))  # the connection is still usable
    assert (await backend.get_result("fine")).return_value == 1


async def test_the_wal_file_is_cut_back_after_a_long_read_transaction(sqlite_path, monkeypatch):
    # a reader holding a read transaction keeps the WAL from being checkpointed: it grows,
    # and SQLite kept that size on disk after the reader was done, as long as
    # any process has the file open
    monkeypatch.setattr(sqlite_file, "WAL_SIZE_LIMIT_BYTES", 64 * 1024)
    backend = SQLiteResultBackend(sqlite_path)
    await backend.startup()
    wal = Path(sqlite_path + "-wal")
    with closing(sqlite3.connect(sqlite_path, isolation_level=None)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM taskq_results").fetchone()
        for number in range(400):
            await backend.set_result(f"task-{number}", success("x" * 10_000))
        grown = file_size(wal)
        reader.execute("COMMIT")
    sizes = []
    for number in range(50):  # the next write checkpoints, a later one starts the WAL anew
        await backend.set_result(f"later-{number}", success(number))
        sizes.append(file_size(wal))  # while open: closing the last connection removes it
    await backend.shutdown()
    assert grown > 4 * 1024 * 1024
    assert min(sizes) <= 64 * 1024


async def test_a_locked_database_raises_busy_after_the_timeout_and_reads_go_on(backend):
    await backend.set_result("before", success(1))
    locker = sqlite3.connect(backend.path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # holds the write lock
    try:
        slow = SQLiteResultBackend(backend.path, busy_timeout_s=0.2)
        with pytest.raises(ResultStoreBusyError, match="busy_timeout_s"):
            await slow.set_result("blocked", success(2))
        assert (await slow.get_result("before")).return_value == 1  # WAL: readers do not wait
        await slow.shutdown()
    finally:
        locker.execute("ROLLBACK")
        locker.close()


class RefusingWAL:
    """A connection whose switch to WAL meets an immediate lock while ``refusals`` last."""

    def __init__(self, connection: sqlite3.Connection, refusals: Any) -> None:
        self.connection = connection
        self.refusals = refusals

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.startswith("PRAGMA journal_mode") and next(self.refusals, False):
            raise sqlite3.OperationalError("database is locked")
        return self.connection.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)


@pytest.mark.parametrize(("refusals", "opens"), [(3, True), (None, False)])
async def test_opening_retries_while_another_process_switches_the_file_to_wal(
    sqlite_path, monkeypatch, refusals, opens
):
    # SQLite refuses at once, without waiting, when two processes switch a new file to WAL
    connect = sqlite3.connect
    left = iter([True] * refusals) if refusals else iter(lambda: True, None)
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **kw: RefusingWAL(connect(*a, **kw), left))
    backend = SQLiteResultBackend(sqlite_path, busy_timeout_s=0.3)
    if opens:
        await backend.startup()
        await backend.set_result("t", success(1))
        assert next(left, "spent") == "spent"
    else:
        with pytest.raises(ResultStoreBusyError):
            await backend.startup()
    await backend.shutdown()


async def test_a_payload_of_another_serializer_is_a_result_get_error(backend):
    with closing(sqlite3.connect(backend.path, isolation_level=None)) as connection:
        connection.execute(
            "INSERT INTO taskq_results VALUES ('alien', ?, 0, NULL)", (b"\x93\x01\x02\x03",)
        )
    with pytest.raises(ResultGetError, match="another serializer"):
        await backend.get_result("alien")


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        (b"[1, 2]", "not a mapping"),
        (b'{"return_value": 1}', "malformed"),
        (b'{"is_err": true, "error": "not encoded"}', "malformed"),
    ],
)
async def test_malformed_payloads_are_result_get_errors(backend, stored, message):
    with closing(sqlite3.connect(backend.path, isolation_level=None)) as connection:
        for table in ("taskq_results", "taskq_progress"):
            connection.execute(f"INSERT INTO {table} VALUES ('bad', ?, 0, NULL)", (stored,))
    with pytest.raises(ResultGetError, match=message):
        await backend.get_result("bad")
    if message == "not a mapping":
        with pytest.raises(ResultGetError, match=message):
            await backend.get_progress("bad")


async def test_an_execution_time_too_large_for_a_float_is_a_result_get_error(backend):
    # float() of a 400-digit integer raised OverflowError, which escaped untyped
    stored = b'{"is_err": false, "execution_time": 1' + b"0" * 400 + b"}"
    with closing(sqlite3.connect(backend.path, isolation_level=None)) as connection:
        connection.execute("INSERT INTO taskq_results VALUES ('huge', ?, 0, NULL)", (stored,))
    with pytest.raises(ResultGetError, match="malformed"):
        await backend.get_result("huge")


@pytest.mark.parametrize("stored", [-1, 10**12, 2.5])
async def test_a_numeric_payload_column_is_a_result_get_error(backend, stored):
    # bytes(row[0]) raised ValueError for -1 and allocated that many zero bytes for a
    # large positive integer
    with closing(sqlite3.connect(backend.path, isolation_level=None)) as connection:
        for table in ("taskq_results", "taskq_progress"):
            connection.execute(f"INSERT INTO {table} VALUES ('number', ?, 0, NULL)", (stored,))
    assert await backend.is_result_ready("number")
    with pytest.raises(ResultGetError, match="not bytes"):
        await backend.get_result("number")
    with pytest.raises(ResultGetError, match="not bytes"):
        await backend.get_progress("number")


async def test_a_text_payload_column_is_read_as_utf8(backend):
    stored = json.dumps(success("é").to_dict())
    with closing(sqlite3.connect(backend.path, isolation_level=None)) as connection:
        connection.execute("INSERT INTO taskq_results VALUES ('text', ?, 0, NULL)", (stored,))
    assert (await backend.get_result("text")).return_value == "é"


class TaggedJSON(TaskiqSerializer):
    """JSON behind a tag, to show that the backend uses the serializer it is given."""

    def dumpb(self, value: Any) -> bytes:
        return b"tagged:" + json.dumps(value).encode()

    def loadb(self, value: bytes) -> Any:
        assert value.startswith(b"tagged:")
        return json.loads(value[len(b"tagged:") :])


class Broken(TaskiqSerializer):
    def dumpb(self, value: Any) -> bytes:
        raise RuntimeError("broken serializer")

    def loadb(self, value: bytes) -> Any:
        raise RuntimeError("broken serializer")


async def test_the_given_serializer_is_used_and_its_failures_are_typed(sqlite_path):
    tagged = SQLiteResultBackend(sqlite_path, serializer=TaggedJSON())
    await tagged.set_result("t", success([1, 2]))
    assert (await tagged.get_result("t")).return_value == [1, 2]
    with closing(sqlite3.connect(sqlite_path, isolation_level=None)) as connection:
        payload = connection.execute("SELECT payload FROM taskq_results").fetchone()[0]
    assert payload.startswith(b"tagged:")
    await tagged.shutdown()

    broken = SQLiteResultBackend(sqlite_path, serializer=Broken())
    with pytest.raises(SerializationError, match="broken serializer"):
        await broken.set_result("u", success(1))
    with pytest.raises(ResultGetError, match="broken serializer"):
        await broken.get_result("t")
    await broken.shutdown()


# -- life cycle and waiting ----------------------------------------------------------------------


async def test_it_works_without_startup_and_reopens_after_shutdown(sqlite_path):
    backend = SQLiteResultBackend(sqlite_path)
    await backend.set_result("a", success(1))
    await backend.shutdown()
    await backend.shutdown()
    assert (await backend.get_result("a")).return_value == 1
    await backend.shutdown()


async def test_wait_ready_sees_a_result_stored_by_another_backend(sqlite_path):
    waiter = SQLiteResultBackend(sqlite_path)
    writer = SQLiteResultBackend(sqlite_path)
    waiting = asyncio.create_task(waiter.wait_ready("late", timeout=PROMPT, check_interval=0.05))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await writer.set_result("late", success(1))
    assert await asyncio.wait_for(waiting, PROMPT) is True
    assert await waiter.wait_ready("late", timeout=0, check_interval=1) is True
    assert await waiter.wait_ready("never", timeout=0.2, check_interval=0.05) is False
    await waiter.shutdown()
    await writer.shutdown()


async def test_broker_round_trip_with_progress(sqlite_path):
    broker = InMemoryBroker().with_result_backend(SQLiteResultBackend(sqlite_path))

    @broker.task
    async def work(n: int, tracker: ProgressTracker[int] = TaskiqDepends()) -> int:
        await tracker.set_progress(TaskState.STARTED, n)
        return n * 2

    await broker.startup()
    task = await work.kiq(21)
    assert (await task.wait_result(timeout=PROMPT)).return_value == 42
    assert await task.get_progress() == TaskProgress(TaskState.STARTED, 21)
    await broker.shutdown()


# -- concurrency and processes -------------------------------------------------------------------


async def test_a_thousand_concurrent_writers_never_mix_results(backend):
    ids = [f"task-{i}" for i in range(1000)]
    await asyncio.gather(*(backend.set_result(i, success(i)) for i in ids))
    results = await asyncio.gather(*(backend.get_result(i) for i in ids))
    assert [r.return_value for r in results] == ids


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from taskq import TaskiqResult
    from taskq_result_backends import SQLiteResultBackend

    async def main(path, name, count, wait_for):
        backend = SQLiteResultBackend(path)
        await backend.startup()
        await asyncio.gather(*(
            backend.set_result(f"{name}-{i}", TaskiqResult(
                is_err=False, return_value=[name, i], execution_time=0))
            for i in range(count)
        ))
        # then read what the other process writes, waiting for its last result
        assert await backend.wait_ready(wait_for, timeout=60, check_interval=0.05)
        other = wait_for.rsplit("-", 1)[0]
        for i in range(count):
            assert (await backend.get_result(f"{other}-{i}")).return_value == [other, i]
        await backend.shutdown()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    """
)


async def test_two_processes_write_and_read_the_same_file(sqlite_path):
    count = 300
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, sqlite_path, name, str(count), f"{other}-{count - 1}"
        )
        for name, other in (("first", "second"), ("second", "first"))
    ]
    codes = await asyncio.wait_for(asyncio.gather(*(c.wait() for c in children)), 120)
    assert codes == [0, 0]
    backend = SQLiteResultBackend(sqlite_path)
    assert count_rows(sqlite_path, "taskq_results") == 2 * count
    assert (await backend.get_result("second-7")).return_value == ["second", 7]
    await backend.shutdown()


def test_processes_opening_a_new_file_at_once_all_succeed(tmp_path):
    path = str(tmp_path / "fresh.sqlite3")
    script = textwrap.dedent(
        """
        import asyncio, sys
        from taskq import TaskiqResult
        from taskq_result_backends import SQLiteResultBackend

        async def main():
            backend = SQLiteResultBackend(sys.argv[1])
            result = TaskiqResult(is_err=False, return_value=1, execution_time=0)
            await backend.set_result(sys.argv[2], result)
            await backend.shutdown()

        asyncio.run(main())
        """
    )
    children = [subprocess.Popen([sys.executable, "-c", script, path, f"p{n}"]) for n in range(4)]
    assert [child.wait(timeout=120) for child in children] == [0, 0, 0, 0]
    assert count_rows(path, "taskq_results") == 4
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _use_after_fork(backend: SQLiteResultBackend[Any], results: Any) -> None:
    async def main() -> None:
        await backend.set_result("from-child", success("child"))
        results.put((await backend.get_result("from-parent")).return_value)
        await backend.shutdown()

    asyncio.run(main())


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with the backend's thread
async def test_a_forked_child_opens_its_own_connection(sqlite_path):
    backend = SQLiteResultBackend(sqlite_path)
    await backend.set_result("from-parent", success("parent"))
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_use_after_fork, args=(backend, results))
    child.start()
    received = await asyncio.to_thread(results.get, True, 60)
    await asyncio.to_thread(child.join, 60)
    assert (received, child.exitcode) == ("parent", 0)
    assert (await backend.get_result("from-child")).return_value == "child"
    await backend.shutdown()


def test_the_default_path_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    async def main() -> None:
        backend = SQLiteResultBackend()
        await backend.startup()
        await backend.shutdown()

    asyncio.run(main())
    assert (Path(tmp_path) / "taskq-results.sqlite3").is_file()
