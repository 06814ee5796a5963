"""Checking a result lifetime, ``result_ttl``, when it is set rather than at each write."""

from __future__ import annotations

#: Longest ``result_ttl`` accepted, in seconds (about 31,700 years; Redis refuses much longer
#: expiries). Keeping results longer than this is keeping them forever: pass None.
MAX_RESULT_TTL_S = 1e12


def checked_ttl(value: float | None) -> float | None:
    """Return ``value`` if it is None or a number of seconds in (0, `MAX_RESULT_TTL_S`].

    Raises:
        ValueError: Anything else: zero, negative, NaN, infinite, too long, not a number.
    """
    if value is None:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and 0 < value <= MAX_RESULT_TTL_S:  # false for NaN
        return value
    raise ValueError(
        f"result_ttl must be positive seconds, at most {MAX_RESULT_TTL_S:g}, or None (keep "
        f"forever), got {value!r}"
    )


class CheckedResultTTL:
    """A backend's ``result_ttl`` attribute, checked by `checked_ttl` whenever it is set."""

    _result_ttl: float | None

    @property
    def result_ttl(self) -> float | None:
        """Seconds a result or progress report is kept, None for ever; applies to later writes.

        Setting it to anything but None or positive seconds (at most ``MAX_RESULT_TTL_S``)
        raises ValueError, rather than every later write failing.
        """
        return self._result_ttl

    @result_ttl.setter
    def result_ttl(self, value: float | None) -> None:
        self._result_ttl = checked_ttl(value)
