"""Logging of the ``taskq worker`` processes: one handler on stderr, a level and a format."""

from __future__ import annotations

import logging

#: The level names ``--log-level`` accepts.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LOG_LEVEL = "INFO"
#: ``processName`` tells the processes apart: ``manager``, ``worker-0``, ``worker-1``, ...
DEFAULT_LOG_FORMAT = "[%(asctime)s][%(processName)s][%(levelname)s] %(name)s: %(message)s"


def check_log_format(log_format: str) -> None:
    """Raise ValueError when ``log_format`` is not a valid %-style logging format."""
    logging.Formatter(log_format, validate=True)


def configure_logging(level: str, log_format: str) -> None:
    """Send every log record of ``level`` and above to stderr, formatted with ``log_format``."""
    logging.basicConfig(level=level, format=log_format, force=True)
