"""Turning the values JSON-like encoders do not know (models, dates, UUIDs...) into plain data."""

from __future__ import annotations

from typing import Any


def to_plain(value: Any) -> Any:
    """Return a JSON-compatible form of ``value`` (pydantic models, dataclasses, datetimes, ...).

    Used as the ``default`` hook of the encoders; raises TypeError for what has no plain form.
    """
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    try:
        return to_jsonable_python(value)
    except PydanticSerializationError as exc:
        raise TypeError(f"{type(value).__qualname__} has no plain-data form: {exc}") from exc
