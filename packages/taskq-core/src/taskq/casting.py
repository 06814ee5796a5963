"""Casting plain data to annotated types with pydantic, skipping values that already fit."""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any

_NO_CAST: tuple[Any, ...] = (Any, inspect.Parameter.empty, object, None)


def cast_value(annotation: Any, value: Any) -> Any:
    """Return ``value`` converted to ``annotation`` (ValueError when it cannot be).

    A value that is already an instance of a plain class annotation is returned untouched,
    so the common case costs one isinstance check and pydantic is imported only when needed.
    """
    if type(value) is annotation:  # the usual case (``-> None`` too): one identity check
        return value
    if annotation in _NO_CAST or (_is_plain_class(annotation) and isinstance(value, annotation)):
        return value
    adapter = _adapter(annotation)
    if adapter is None:  # a type pydantic has no schema for: nothing to cast with
        return value
    return adapter.validate_python(value)


def _is_plain_class(annotation: Any) -> bool:
    # on 3.10, list[int] passes isinstance(..., type) but cannot be used with isinstance
    return isinstance(annotation, type) and typing.get_origin(annotation) is None


@functools.lru_cache(maxsize=1024)
def _cached_adapter(annotation: Any) -> Any:
    from pydantic import PydanticSchemaGenerationError, TypeAdapter  # heavy: imported on need

    try:
        return TypeAdapter(annotation)
    except PydanticSchemaGenerationError:
        return None


def _adapter(annotation: Any) -> Any:
    try:
        return _cached_adapter(annotation)
    except TypeError:  # unhashable annotation
        return _cached_adapter.__wrapped__(annotation)
