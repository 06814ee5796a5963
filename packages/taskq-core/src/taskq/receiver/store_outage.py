"""`StoreOutageLog`: a result backend that cannot store results is logged once, not per task.

While a result backend is down (or refuses every write: a Redis out of memory), every task a
worker runs fails to store its result, and its message is released for redelivery. One error
line per task would bury everything else in the log (a worker running 1,000 tasks a second
wrote 1,000 lines of 1 KB a second): the first failure is logged in full, the others are
counted and summed up at most once every ``REPORT_INTERVAL_S``, and the first result stored
after them ends the outage with a warning.
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("taskq.receiver")

#: Seconds between two summaries of the results that still could not be stored.
REPORT_INTERVAL_S = 60.0


class StoreOutageLog:
    """Logs the results a worker could not store: the first in full, then counts, then the end."""

    __slots__ = ("_last", "_reported", "_reported_at", "failures")

    def __init__(self) -> None:
        """Start with no outage."""
        #: Results not stored since the outage began (0: none is going on).
        self.failures = 0
        self._reported = 0
        self._reported_at = 0.0
        self._last = ""

    def failed(self, task_id: str, line: str) -> None:
        """Note that the result of ``task_id`` was not stored; ``line`` says why in full."""
        self.failures += 1
        self._last = f"task {task_id}: {line}"
        now = time.monotonic()
        if self.failures == 1:
            logger.error(
                "Task %s: %s (the next results that cannot be stored are counted, and summed "
                "up every %g s, until one is stored)",
                task_id,
                line,
                REPORT_INTERVAL_S,
            )
        elif now - self._reported_at < REPORT_INTERVAL_S:
            return
        else:
            logger.error(
                "%d more results could not be stored, their messages released for "
                "redelivery; the last, %s",
                self.failures - self._reported,
                self._last,
            )
        self._reported, self._reported_at = self.failures, now

    def stored(self) -> None:
        """Note a result stored: an outage going on ends, with a warning."""
        if not self.failures:
            return
        logger.warning(
            "The result backend stores results again, after %d could not be stored",
            self.failures,
        )
        self.failures = 0
