"""`FailureLog`: a call that keeps failing (each read of a broken source) logged as a few lines.

A source whose store is down or misconfigured fails at every read and every claim; one line
per attempt (with a traceback) would bury everything else in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass

from taskq.exceptions import TaskiqError
from taskq.task_events import shortened
from taskq_scheduler.clock import Clock

#: Seconds between two lines about one failure that lasts; a changed error is logged at once.
REPORT_INTERVAL_S = 60.0
#: Longest error text in a line: an error of a third-party source may carry anything.
MAX_ERROR_CHARS = 2000


@dataclass
class _Run:
    """Consecutive failures of one call: what it is, the last error logged, when, how many."""

    what: str
    kind: Hashable
    reported_at: float
    failures: int = 1


class FailureLog:
    """Logs runs of failures of a repeated call, by key: its start, a line a minute, its end.

    The first failure of a run is an error line, with its traceback unless the error is a
    `TaskiqError` (whose message says what is wrong). While the run lasts, one line per
    `REPORT_INTERVAL_S` with the count, or at once when the error changes. The first success
    after it is a warning saying how many calls failed.

    Args:
        clock: What "a minute" is measured on.
        logger: Where the lines go.
    """

    def __init__(self, clock: Clock, logger: logging.Logger) -> None:
        self.clock = clock
        self.logger = logger
        self._runs: dict[Hashable, _Run] = {}

    def failed(
        self,
        key: Hashable,
        what: str,
        error: BaseException,
        meanwhile: str,
        kind: Hashable = None,
    ) -> None:
        """Count a failure of ``what`` ("Reading the schedules of X").

        Args:
            key: The call that failed (several calls may fail at once).
            what: The call, as the subject of a sentence, for the log.
            error: Why it failed.
            meanwhile: What that means until it works again ("its last read is kept").
            kind: What tells this error from another, when its text names the attempt
                (default: its text).
        """
        now = self.clock.now()
        text = shortened(f"{type(error).__name__}: {error}", MAX_ERROR_CHARS)
        kind = text if kind is None else kind
        run = self._runs.get(key)
        if run is None:
            self._runs[key] = _Run(what, kind, now)
            trace = None if isinstance(error, TaskiqError) else error
            self.logger.error("%s failed (%s): %s", what, meanwhile, text, exc_info=trace)
            return
        run.failures += 1
        if kind == run.kind and now - run.reported_at < REPORT_INTERVAL_S:
            return
        run.kind, run.reported_at = kind, now
        self.logger.error(
            "%s still fails (%d times in a row; %s): %s", what, run.failures, meanwhile, text
        )

    def succeeded(self, key: Hashable) -> None:
        """Note that the call of ``key`` worked: a warning if it was failing."""
        run = self._runs.pop(key, None)
        if run is not None:
            self.logger.warning("%s works again, after %d failure(s)", run.what, run.failures)
