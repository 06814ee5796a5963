"""Converters of option values: each reads one option's text, from argv or the environment.

Each raises `argparse.ArgumentTypeError` saying what it expected; argparse (or
`EnvArgumentParser` for an environment variable) turns that into a usage error.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from taskq.acks import AcknowledgeType
from taskq.cli.logs import LOG_LEVEL_ALIASES, LOG_LEVELS, check_log_format

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
#: The longest duration an option takes: 30 days. Longer ones (``inf``, ``1e300``) overflow the
#: clocks that timeouts and sleeps are computed with, and would crash the command when used.
MAX_SECONDS = 30 * 24 * 3600
#: The largest TCP port.
MAX_PORT = 65535


def at_least(minimum: int) -> Callable[[str], int]:
    """Return a converter to an integer of at least ``minimum``."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return convert


def port(text: str) -> int:
    """Read a TCP port to listen on, 1 to `MAX_PORT`."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to {MAX_PORT}, got {text!r}")
    return value


def seconds(text: str) -> float:
    """Read a number of seconds, from 0 to `MAX_SECONDS`."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds from 0 to {MAX_SECONDS} (30 days), got {text!r}"
        )
    return value


def positive_seconds(text: str) -> float:
    """Read a number of seconds greater than 0."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def boolean(text: str) -> bool:
    """Read a yes/no value: 1/0, true/false, yes/no or on/off (an empty string is no)."""
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise argparse.ArgumentTypeError(f"expected 1/0, true/false, yes/no or on/off, got {text!r}")


def ack_type(text: str) -> AcknowledgeType:
    """Read an `AcknowledgeType` by its value, in any case."""
    try:
        return AcknowledgeType(text.strip().lower())
    except ValueError:
        choices = ", ".join(member.value for member in AcknowledgeType)
        raise argparse.ArgumentTypeError(f"expected one of {choices}, got {text!r}") from None


def log_level(text: str) -> str:
    """Read a logging level name, in any case (``FATAL``, taskiq's name, reads ``CRITICAL``)."""
    level = text.strip().upper()
    level = LOG_LEVEL_ALIASES.get(level, level)
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return level


def log_format(text: str) -> str:
    """Read a %-style logging format, or ``json``."""
    try:
        check_log_format(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a logging format ({exc}): {text!r}") from None
    return text


def event_store_url(text: str) -> str:
    """Read the URL of an event store (checked, not opened)."""
    from taskq.event_stores.urls import open_event_store
    from taskq.exceptions import EventStoreError

    try:
        open_event_store(text)
    except EventStoreError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def pattern(text: str) -> str:
    """Read one non-empty glob pattern."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a glob pattern, got an empty string")
    return text.strip()


def patterns(text: str) -> tuple[str, ...]:
    """Read comma-separated glob patterns."""
    return tuple(pattern(part) for part in text.split(","))


def directory(text: str) -> str:
    """Read the path of an existing directory."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"expected an existing directory, got {text!r}")
    return text


def directories(text: str) -> tuple[str, ...]:
    """Read comma-separated paths of existing directories."""
    return tuple(directory(part.strip()) for part in text.split(","))
