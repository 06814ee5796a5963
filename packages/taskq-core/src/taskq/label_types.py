"""taskiq's typed labels: the ``labels_types`` a taskiq client sends beside string labels.

A taskiq client sends every label as a string and, in ``labels_types``, a number per label
saying what it was: ``{"delay": "5"}`` with ``{"delay": 2}``. `parse_typed_labels` turns
them back (``{"delay": 5}``), so that a taskq worker reads a taskiq client's labels with
their types. taskq's own clients send labels with their types and no ``labels_types``.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Callable
from typing import Any


class LabelType(enum.IntEnum):
    """What a label was before a taskiq client turned it into a string (taskiq's numbers)."""

    ANY = 1
    INT = 2
    STR = 3
    FLOAT = 4
    BOOL = 5
    BYTES = 6


_PARSERS: dict[LabelType, Callable[[Any], Any]] = {
    LabelType.ANY: lambda value: value,
    LabelType.INT: int,
    LabelType.STR: str,
    LabelType.FLOAT: float,
    LabelType.BOOL: lambda value: str(value).lower() == "true",
    LabelType.BYTES: lambda value: base64.b64decode(value, validate=True),
}


def parse_typed_labels(labels: dict[str, Any], labels_types: Any) -> None:
    """Give each label of ``labels`` named in ``labels_types`` its type back, in place.

    ``labels_types`` None means there is nothing to parse.

    Raises:
        ValueError: ``labels_types`` is not a mapping of label types, or a label does not
            parse as its type says.
    """
    if labels_types is None:
        return
    if not isinstance(labels_types, dict):
        raise ValueError(f"labels_types must be a mapping, got {type(labels_types).__name__}")
    for label, number in labels_types.items():
        if label not in labels:
            continue
        try:
            labels[label] = _PARSERS[LabelType(number)](labels[label])
        except (ValueError, TypeError, binascii.Error) as exc:
            raise ValueError(
                f"label {label!r} ({labels[label]!r}) does not parse as type {number!r}: {exc}"
            ) from None
