"""Logging of the ``taskq worker`` processes: one handler on stderr, a level and a format."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from taskq.event_recorder import process_number
from taskq.log_context import current_task
from taskq.task_events import WorkerId, stored_task_id, stored_task_name

#: The level names ``--log-level`` accepts.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Other names of those levels: taskiq's commands take ``FATAL`` (``logging.FATAL``).
LOG_LEVEL_ALIASES = {"FATAL": "CRITICAL"}
DEFAULT_LOG_LEVEL = "INFO"
#: ``processName`` tells the processes apart: ``manager``, ``worker-0``, ``worker-1``, ...
DEFAULT_LOG_FORMAT = "[%(asctime)s][%(processName)s][%(levelname)s] %(name)s: %(message)s"


#: The ``--log-format`` value that writes one JSON object per line.
JSON_LOG_FORMAT = "json"


def check_log_format(log_format: str) -> None:
    """Raise ValueError when ``log_format`` is neither ``json`` nor a %-style logging format."""
    if log_format != JSON_LOG_FORMAT:
        logging.Formatter(log_format, validate=True)


def configure_logging(level: str, log_format: str) -> None:
    """Send every log record of ``level`` and above to stderr, formatted with ``log_format``.

    ``json`` writes one `JsonLogFormatter` object per line, with this process's worker id.
    """
    if log_format != JSON_LOG_FORMAT:
        logging.basicConfig(level=level, format=log_format, force=True)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter(str(WorkerId.current(process_number()))))
    logging.basicConfig(level=level, handlers=[handler], force=True)


class JsonLogFormatter(logging.Formatter):
    """Formats a record as one JSON object: ``time``, ``level``, ``logger``, ``message``.

    ``task_id`` and ``task_name`` are added while a task's message is processed (as
    `taskq.task_events.stored_task_id` and ``stored_task_name`` shorten a long one),
    ``worker_id`` (``host:pid:process``) in worker processes, ``exception`` (the traceback
    text) when the record carries one. ``time`` is ISO 8601 in UTC.
    """

    def __init__(self, worker_id: str | None = None) -> None:
        super().__init__()
        self.worker_id = worker_id

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        task = current_task.get()
        if task is not None:  # as the event store keeps them: megabytes are not logged
            data["task_id"], data["task_name"] = stored_task_id(task[0]), stored_task_name(task[1])
        if self.worker_id is not None:
            data["worker_id"] = self.worker_id
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)
