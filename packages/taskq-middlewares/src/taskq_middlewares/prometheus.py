"""`PrometheusMiddleware`: task counters, run times and running tasks, summed over every worker."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from taskq.abc.middleware import TaskiqMiddleware
from taskq.exceptions import NoResultError, SecurityError, TaskRejectedError
from taskq.message import TaskiqMessage
from taskq.result import TaskiqResult
from taskq.toolkit import is_loopback_host
from taskq_middlewares.metrics_server import MetricsServer, MetricsTLS
from taskq_middlewares.simple_retry import RETRIES_LABEL

logger = logging.getLogger("taskq.prometheus")

DEFAULT_PORT = 9000
DEFAULT_ADDR = "127.0.0.1"
#: Results that are neither a success nor a failure: the run asked for no result, or rejected.
_NOT_FINISHED = (NoResultError, TaskRejectedError)


class PrometheusMiddleware(TaskiqMiddleware):
    """Counts the tasks workers run and serves the counts on an HTTP endpoint for Prometheus.

    Metrics, each labelled by ``task_name``: ``taskq_tasks_received_total``,
    ``taskq_tasks_succeeded_total``, ``taskq_tasks_failed_total``,
    ``taskq_tasks_retried_total`` (runs that are retries of a failed run),
    ``taskq_task_execution_seconds`` (a histogram) and ``taskq_tasks_running`` (a gauge).

    The processes of ``taskq worker --workers N`` write to one directory (prometheus-client's
    multiprocess mode, set up here) and one of them serves the sum over all N on
    ``server_addr:server_port``; if it stops, another takes over. Only worker processes serve
    the endpoint; a process that runs tasks without being a worker (the in-memory broker's)
    still counts them. Requires ``pip install 'taskq-middlewares[prometheus]'``.

    Parameters:
        metrics_path: the directory under which each worker group keeps its metric files
            (default: ``taskq-prometheus`` in the temporary directory). A
            ``PROMETHEUS_MULTIPROC_DIR`` set in the environment is used instead, as is.
        server_addr: the address the endpoint listens on (default ``127.0.0.1``: this host
            only). Any other address needs ``tls`` or ``allow_unauthenticated=True``.
        server_port: its port (default 9000).
        tls: serve over HTTPS, only to scrapers with a client certificate (`MetricsTLS`).
        allow_unauthenticated: listen on an address other hosts reach without ``tls``: anyone
            who reaches the port reads the task names and counts.

    Raises:
        SecurityError: ``server_addr`` is not loopback, without ``tls`` and without
            ``allow_unauthenticated``.
    """

    def __init__(
        self,
        metrics_path: Path | str | None = None,
        server_addr: str = DEFAULT_ADDR,
        server_port: int = DEFAULT_PORT,
        *,
        tls: MetricsTLS | None = None,
        allow_unauthenticated: bool = False,
    ) -> None:
        """Configure the metrics; nothing is created before the first task or worker startup."""
        super().__init__()
        if not (tls or allow_unauthenticated or is_loopback_host(server_addr)):
            raise SecurityError(
                f"refusing to serve the metrics on {server_addr} without "
                "authentication: anyone who reaches it reads them; give tls=MetricsTLS(...) "
                "(scrapers then need a client certificate), or allow_unauthenticated=True "
                "where only your scrapers reach that address"
            )
        try:
            import prometheus_client  # noqa: F401 - fail here, not in a worker's first task
        except ImportError as exc:
            raise ImportError(
                "PrometheusMiddleware needs prometheus-client: "
                "pip install 'taskq-middlewares[prometheus]'"
            ) from exc
        self.metrics_path = None if metrics_path is None else Path(metrics_path)
        self.server_addr = server_addr
        self.server_port = server_port
        self.tls = tls
        self.directory: Path | None = None
        self.server: MetricsServer | None = None
        self._metrics: _Metrics | None = None

    def startup(self) -> None:
        """In a worker process: set up the metrics and serve them."""
        if not self.broker.is_worker_process:
            return
        metrics = self._ensure_metrics()
        self.server = MetricsServer(metrics.directory, self.server_addr, self.server_port, self.tls)
        self.server.start()

    def shutdown(self) -> None:
        """Stop serving (the process's gauge file goes once the process is gone)."""
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        """Count a received task (and a retry) and one more running."""
        metrics = self._metrics or self._ensure_metrics()
        per_task = metrics.of(message.task_name)
        per_task.received.inc()
        if _is_retry(message.labels.get(RETRIES_LABEL)):
            per_task.retried.inc()
        per_task.running.inc()
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        """Count the outcome and the run time; one fewer running."""
        metrics = self._metrics or self._ensure_metrics()
        per_task = metrics.of(message.task_name)
        per_task.running.dec()
        error = result.error
        if error is None:
            per_task.succeeded.inc()
        elif not isinstance(error, _NOT_FINISHED):
            per_task.failed.inc()
        per_task.execution_time.observe(result.execution_time)

    def _ensure_metrics(self) -> _Metrics:
        if self._metrics is None:
            self._metrics = _Metrics.create(self.metrics_path)
        return self._metrics


class _TaskMetrics:
    """The metric children of one task name (looked up once, not per message)."""

    __slots__ = ("execution_time", "failed", "received", "retried", "running", "succeeded")

    def __init__(self, family: _Metrics, task_name: str) -> None:
        self.received = family.received.labels(task_name)
        self.succeeded = family.succeeded.labels(task_name)
        self.failed = family.failed.labels(task_name)
        self.retried = family.retried.labels(task_name)
        self.running = family.running.labels(task_name)
        self.execution_time = family.execution_time.labels(task_name)


class _Metrics:
    """The metric families of one process, written to its group's directory."""

    def __init__(self, directory: Path) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.directory = directory
        by_task = ["task_name"]
        # registry=None: the values live in the directory's files, read by the group's server
        self.received = Counter(
            "taskq_tasks_received", "Tasks received by workers", by_task, registry=None
        )
        self.succeeded = Counter(
            "taskq_tasks_succeeded", "Tasks that returned a value", by_task, registry=None
        )
        self.failed = Counter("taskq_tasks_failed", "Tasks that raised", by_task, registry=None)
        self.retried = Counter(
            "taskq_tasks_retried", "Runs that retry a failed run", by_task, registry=None
        )
        self.running = Gauge(
            "taskq_tasks_running",
            "Tasks running now",
            by_task,
            registry=None,
            multiprocess_mode="livesum",
        )
        self.execution_time = Histogram(
            "taskq_task_execution_seconds", "Run time of tasks", by_task, registry=None
        )
        self._children: dict[str, _TaskMetrics] = {}

    @classmethod
    def create(cls, metrics_path: Path | None) -> _Metrics:
        """Prepare the group's directory, switch prometheus-client to it, make the families."""
        from taskq_middlewares.metric_files import prepare_directory, tidy

        directory = prepare_directory(metrics_path)
        _use_multiprocess_values()
        tidy(directory)
        return cls(directory)

    def of(self, task_name: str) -> _TaskMetrics:
        """The metrics of ``task_name``."""
        children = self._children.get(task_name)
        if children is None:
            children = self._children[task_name] = _TaskMetrics(self, task_name)
        return children


def _use_multiprocess_values() -> None:
    """Make metrics created from now on write to the multiprocess files.

    Needed when prometheus-client was imported before ``PROMETHEUS_MULTIPROC_DIR`` was set (it
    picks its value class on import). Done once per process: two value classes would write
    the same files independently.
    """
    from prometheus_client import values

    if values.ValueClass.__name__ != "MmapedValue":
        values.ValueClass = values.get_value_class()


def _is_retry(failed_runs: Any) -> bool:
    """Whether a ``_retries`` label counts failed runs before this one (1 or more).

    Labels may arrive as strings, or be set by hand: ``"0"``, ``-5`` or ``"x"`` is no retry.
    Quiet: the retry middleware reading the same label says what is wrong with it.
    """
    if not failed_runs:
        return False
    try:
        return int(failed_runs) > 0
    except (TypeError, ValueError, OverflowError):
        return False
