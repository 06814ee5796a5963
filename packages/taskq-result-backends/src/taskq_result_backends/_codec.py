"""Turning results and progress reports into bytes with a serializer, and back."""

from __future__ import annotations

from typing import Any

from taskq.abc.serializer import TaskiqSerializer
from taskq.exceptions import ResultGetError, SerializationError
from taskq.progress import TaskProgress
from taskq.result import TaskiqResult
from taskq.serializers import JSONSerializer


def serializer_or_default(serializer: TaskiqSerializer | None) -> TaskiqSerializer:
    """Return ``serializer``, or taskq's JSON serializer when it is None."""
    return JSONSerializer() if serializer is None else serializer


def encode_result(serializer: TaskiqSerializer, task_id: str, result: TaskiqResult[Any]) -> bytes:
    """Encode ``result`` (its error as plain data); `SerializationError` when it cannot be."""
    return _encode(serializer, f"the result of task {task_id}", result.to_dict())


def decode_result(
    serializer: TaskiqSerializer, task_id: str, payload: bytes, with_logs: bool
) -> TaskiqResult[Any]:
    """Rebuild a result stored by `encode_result`; `ResultGetError` when the bytes are unreadable.

    The log is dropped unless ``with_logs`` is true.
    """
    data = _decode(serializer, f"the stored result of task {task_id}", payload)
    try:
        result = TaskiqResult.from_dict(data)
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ResultGetError(f"the stored result of task {task_id} is malformed: {exc!r}") from exc
    if not with_logs:
        result.log = None
    return result


def encode_progress(
    serializer: TaskiqSerializer, task_id: str, progress: TaskProgress[Any]
) -> bytes:
    """Encode a progress report; `SerializationError` when its metadata cannot be encoded."""
    return _encode(serializer, f"the progress of task {task_id}", progress.to_dict())


def decode_progress(
    serializer: TaskiqSerializer, task_id: str, payload: bytes
) -> TaskProgress[Any]:
    """Rebuild a progress report stored by `encode_progress`."""
    data = _decode(serializer, f"the stored progress of task {task_id}", payload)
    try:
        return TaskProgress.from_dict(data)
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ResultGetError(
            f"the stored progress of task {task_id} is malformed: {exc!r}"
        ) from exc


def _encode(serializer: TaskiqSerializer, what: str, data: dict[str, Any]) -> bytes:
    try:
        return serializer.dumpb(data)
    except Exception as exc:  # SerializationError, or whatever a third-party serializer raises
        raise SerializationError(f"cannot encode {what}: {exc}") from exc


def _decode(serializer: TaskiqSerializer, what: str, payload: bytes) -> dict[str, Any]:
    try:
        data = serializer.loadb(payload)
    except Exception as exc:
        raise ResultGetError(
            f"cannot decode {what} ({exc}); was it stored with another serializer?"
        ) from exc
    if not isinstance(data, dict):
        raise ResultGetError(f"{what} is not a mapping but {type(data).__name__}")
    return data
