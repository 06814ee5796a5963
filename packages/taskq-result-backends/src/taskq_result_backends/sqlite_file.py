"""The SQLite files of the result backend and of its stores, failing with their typed errors."""

from __future__ import annotations

from taskq.exceptions import ResultBackendError
from taskq.toolkit import SQLiteFile, is_busy_error
from taskq_result_backends.errors import ResultStoreBusyError, ResultStoreUnavailableError


def result_file(path: str, busy_timeout_s: float, schema: str, what: str) -> SQLiteFile:
    """The file at ``path`` with the tables of ``schema``; its failures are `ResultBackendError`.

    ``what`` names the database in messages ("the SQLite result database").

    Raises:
        ValueError: ``busy_timeout_s`` is not a finite number of seconds above 0 and at most
            2,147,483.647.
    """
    return SQLiteFile(path, busy_timeout_s, schema, what, _store_error)


def _store_error(exc: Exception, file: SQLiteFile) -> ResultBackendError:
    """The typed error, with what to do, for a failure of ``file``."""
    path, what, text = file.path, file.what, str(exc)
    if isinstance(exc, UnicodeEncodeError):  # a lone surrogate in a task id, key or reason
        return ResultBackendError(
            f"{what} {path!r} cannot store text that is not valid Unicode "
            f"({exc}): a lone surrogate, as decoding bytes with 'surrogateescape' makes"
        )
    if is_busy_error(exc):
        return ResultStoreBusyError(
            f"{what} {path!r} stayed locked for more than "
            f"{file.busy_timeout_s} s ({text}): another connection holds a long write "
            "transaction; find it, or raise busy_timeout_s"
        )
    if any(sign in text for sign in ("unable to open", "not a database", "readonly")):
        return ResultStoreUnavailableError(
            f"cannot use {path!r} as {what} ({text}): check that its "
            "directory exists and is writable and that the file, if any, is a SQLite database"
        )
    return ResultBackendError(f"{what} {path!r} failed: {text}")
