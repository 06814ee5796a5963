"""Checks of the numbers a constructor takes (timeouts, intervals, sizes, counts).

A value that makes no sense (a NaN timeout, an interval of 0, an infinite batch size) is
refused where it is given, with a ValueError naming the argument and what it must be, rather
than failing later in a background task, spinning, or waiting for ever.
"""

from __future__ import annotations

import math
import numbers

#: The longest time a signed 32-bit count of milliseconds holds, 2,147,483.647 s (24.8 days):
#: the limit of SQLite's busy timeout (a longer one becomes no wait at all).
MAX_INT32_MS_S = 2_147_483.647


def check_seconds(
    name: str,
    value: float,
    *,
    zero: bool = False,
    maximum: float | None = None,
    alternative: str = "",
) -> float:
    """Return ``value`` when it is a finite number of seconds above 0 (or 0, with ``zero``).

    Args:
        name: The argument's name, for the message.
        value: What was given.
        zero: Accept 0 too (when 0 means "at once" or "no retry").
        maximum: The largest value accepted (None: any finite one).
        alternative: The other values the caller accepts, for the message (``"or None"``).

    Raises:
        ValueError: NaN, an infinity, a negative number, 0 (unless ``zero``), a value above
            ``maximum`` or anything that is not a real number (a bool included).
    """
    given: object = value  # annotations do not stop a caller passing anything
    if not isinstance(given, bool) and isinstance(given, numbers.Real):
        seconds = float(given)
        above = seconds >= 0 if zero else seconds > 0
        if above and math.isfinite(seconds) and (maximum is None or seconds <= maximum):
            return value
    least = "0 or more" if zero else "greater than 0"
    most = "" if maximum is None else f" and at most {_shown(maximum)}"
    other = f", {alternative}" if alternative else ""
    raise ValueError(
        f"{name} must be a finite number of seconds {least}{most}{other}, got {value!r}"
    )


def _shown(number: float) -> str:
    """``number`` as short as ``:g`` writes it, in full where that would round it."""
    short = f"{number:g}"
    return short if float(short) == number else repr(number)


def check_count(
    name: str,
    value: int,
    *,
    minimum: int = 1,
    maximum: int | None = None,
    alternative: str = "",
) -> int:
    """Return ``value`` when it is an integer of at least ``minimum`` (and at most ``maximum``).

    Args:
        name: The argument's name, for the message.
        value: What was given.
        minimum: The smallest value accepted (1: a size or a count of things; 0: "none").
        maximum: The largest value accepted (None: no bound).
        alternative: The other values the caller accepts, for the message (``"or None"``).

    Raises:
        ValueError: A number out of range, a float (``1.5``, ``inf``, NaN) or anything that is
            not an integer (a bool included).
    """
    given: object = value
    if not isinstance(given, bool) and isinstance(given, numbers.Integral):
        count = int(given)
        if minimum <= count and (maximum is None or count <= maximum):
            return value
    bounds = f"of at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
    other = f", {alternative}" if alternative else ""
    raise ValueError(f"{name} must be an integer {bounds}{other}, got {value!r}")
