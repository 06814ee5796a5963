"""The labels that steer a run (`delay`, `priority`, `timeout`, `ack_type`): bounds, parsing, check.

Every broker reads these labels through the functions here, and `kiq` refuses a value outside
the bounds with `InvalidLabelError` before anything is sent. Values may be numbers or strings
holding one (labels travel as strings in some formats).

- ``delay``: seconds before the task may run; a finite number up to `MAX_DELAY_S` (30 days).
  Zero or negative means now.
- ``priority``: a finite integral number (``5``, ``5.0`` or ``"5"``) from `MIN_PRIORITY` to
  `MAX_PRIORITY`; higher runs sooner. Brokers clamp it to the levels they have.
- ``timeout``: seconds the run may take; a finite number. Zero or negative means no limit.
- ``ack_type``: when the worker acknowledges this task's message, overriding the worker's
  setting: an `AcknowledgeType` or its value in any case (``"manual"``, ``"WHEN_SAVED"``),
  also written ``"AcknowledgeType.MANUAL"`` (what a taskiq client sends for the member).
"""

from __future__ import annotations

import math
from typing import Any

from taskq.acks import AcknowledgeType
from taskq.exceptions import InvalidLabelError

#: The label that carries a unique task's key to the worker, which frees the key
#: (see `taskq.control.unique`).
UNIQUE_LABEL = "unique_key"

#: The longest ``delay`` a message may ask for, in seconds (30 days).
MAX_DELAY_S = 30 * 24 * 3600
#: The lowest ``priority`` a message may ask for.
MIN_PRIORITY = -(2**31)
#: The highest ``priority`` a message may ask for.
MAX_PRIORITY = 2**31 - 1

_DELAY_EXPECTED = f"a finite number of seconds, at most {MAX_DELAY_S} (30 days)"
_PRIORITY_EXPECTED = f"an integral number from {MIN_PRIORITY} to {MAX_PRIORITY}"
_TIMEOUT_EXPECTED = "a finite number of seconds"
_ACK_TYPE_EXPECTED = "one of " + ", ".join(repr(ack_type.value) for ack_type in AcknowledgeType)


def delay_seconds(value: Any) -> float:
    """Return the seconds a ``delay`` label asks to wait: 0.0 for none, zero or negative.

    Raises:
        InvalidLabelError: ``value`` is not a finite number or is over `MAX_DELAY_S`.
    """
    if value is None:
        return 0.0
    seconds = _finite("delay", value, _DELAY_EXPECTED)
    if seconds > MAX_DELAY_S:
        raise InvalidLabelError(label="delay", value=value, expected=_DELAY_EXPECTED)
    return seconds if seconds > 0 else 0.0


def priority_value(value: Any) -> int:
    """Return the integer a ``priority`` label asks for: 0 for none.

    Raises:
        InvalidLabelError: ``value`` is not a finite integral number from `MIN_PRIORITY` to
            `MAX_PRIORITY`.
    """
    if value is None:
        return 0
    if type(value) is int:  # exact for any size, and the common case
        number: float = value
    else:
        number = _finite("priority", value, _PRIORITY_EXPECTED)
        if not number.is_integer():
            raise InvalidLabelError(label="priority", value=value, expected=_PRIORITY_EXPECTED)
    if not MIN_PRIORITY <= number <= MAX_PRIORITY:
        raise InvalidLabelError(label="priority", value=value, expected=_PRIORITY_EXPECTED)
    return int(number)


def timeout_seconds(value: Any) -> float | None:
    """Return the seconds a ``timeout`` label allows: None for no limit (none, zero, negative).

    Raises:
        InvalidLabelError: ``value`` is not a finite number.
    """
    if value is None:
        return None
    seconds = _finite("timeout", value, _TIMEOUT_EXPECTED)
    return seconds if seconds > 0 else None


def ack_type_value(value: Any) -> AcknowledgeType:
    """Return the `AcknowledgeType` an ``ack_type`` label asks for (see the module docstring).

    Raises:
        InvalidLabelError: ``value`` is not an `AcknowledgeType` nor the name of one.
    """
    if isinstance(value, AcknowledgeType):
        return value
    if isinstance(value, str):
        try:
            return AcknowledgeType(value.lower().removeprefix("acknowledgetype."))
        except ValueError:
            pass
    raise InvalidLabelError(label="ack_type", value=value, expected=_ACK_TYPE_EXPECTED)


def check_labels(labels: dict[str, Any]) -> None:
    """Check the ``delay``, ``priority``, ``timeout`` and ``ack_type`` labels ``labels`` holds.

    Raises:
        InvalidLabelError: one of them is outside its bounds (see the module docstring).
    """
    if "delay" in labels:
        delay_seconds(labels["delay"])
    if "priority" in labels:
        priority_value(labels["priority"])
    if "timeout" in labels:
        timeout_seconds(labels["timeout"])
    if "ack_type" in labels:
        ack_type_value(labels["ack_type"])


def _finite(label: str, value: Any, expected: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidLabelError(label=label, value=value, expected=expected) from None
    if not math.isfinite(number):
        raise InvalidLabelError(label=label, value=value, expected=expected)
    return number
