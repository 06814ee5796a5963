"""PrometheusMiddleware in one process: what it counts, the endpoint, and its metric files."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskq import Receiver, TaskiqMessage, TaskiqMiddleware
from taskq.exceptions import SecurityError
from taskq.testing import eventually_blocking, free_port
from taskq.toolkit import WORKER_GROUP_ENV
from taskq_inmemory import InMemoryBroker
from taskq_middlewares import (
    MetricsTLS,
    OpenTelemetryMiddleware,
    PrometheusMiddleware,
    SimpleRetryMiddleware,
    metrics_server,
)
from taskq_middlewares.metric_files import (
    MULTIPROC_DIR_ENV,
    forget_dead_processes,
    prepare_directory,
    remove_dead_groups,
)
from taskq_middlewares.metrics_server import GroupCollector, MetricsServer

pytest.importorskip("prometheus_client")
WAIT = 10


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The multiprocess directory of this test process (prometheus-client keeps one per process)."""
    directory = tmp_path_factory.mktemp("metrics")
    before = os.environ.get(MULTIPROC_DIR_ENV)
    os.environ[MULTIPROC_DIR_ENV] = str(directory)
    yield directory
    if before is None:
        del os.environ[MULTIPROC_DIR_ENV]
    else:
        os.environ[MULTIPROC_DIR_ENV] = before


def value(directory: Path, sample_name: str, task_name: str) -> float:
    """The summed value of one sample of one task in the directory's files."""
    for metric in GroupCollector(directory).collect():
        for sample in metric.samples:
            if sample.name == sample_name and sample.labels.get("task_name") == task_name:
                return float(sample.value)
    return 0.0


NAMES = (
    "taskq_tasks_received_total",
    "taskq_tasks_succeeded_total",
    "taskq_tasks_failed_total",
    "taskq_tasks_retried_total",
    "taskq_task_execution_seconds_count",
    "taskq_tasks_running",
)


async def test_counts_received_succeeded_failed_retried_and_run_times(
    metrics_dir: Path, running: Any
) -> None:
    broker = InMemoryBroker().with_middlewares(PrometheusMiddleware(), SimpleRetryMiddleware())
    attempts: list[int] = []

    @broker.task(task_name="prom:ok")
    async def ok(x: int) -> int:
        return x

    @broker.task(task_name="prom:broken")
    async def broken() -> None:
        raise ValueError("no")

    @broker.task(task_name="prom:flaky", retry_on_error=True)
    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("once")
        return "fine"

    def snapshot() -> dict[str, tuple[float, ...]]:
        return {
            name: tuple(value(metrics_dir, sample, name) for sample in NAMES)
            for name in ("prom:ok", "prom:broken", "prom:flaky")
        }

    before = snapshot()
    async with running(broker):
        for i in range(3):
            await (await ok.kiq(i)).wait_result(timeout=WAIT)
        for _ in range(2):
            await (await broken.kiq()).wait_result(timeout=WAIT)
        assert (await (await flaky.kiq()).wait_result(timeout=WAIT)).return_value == "fine"
    after = snapshot()
    delta = {k: tuple(a - b for a, b in zip(after[k], before[k], strict=True)) for k in after}
    # received, succeeded, failed, retried, runs timed, running now
    assert delta["prom:ok"] == (3, 3, 0, 0, 3, 0)
    assert delta["prom:broken"] == (2, 0, 2, 0, 2, 0)
    assert delta["prom:flaky"] == (2, 1, 1, 1, 2, 0)


# any truthy label counted as a retry: "0", -5 and "x" too
@pytest.mark.parametrize(("label", "retried"), [("0", 0), (-5, 0), ("x", 0), ([], 0), ("2", 1)])
async def test_only_a_positive_retry_count_is_counted_as_a_retry(
    metrics_dir: Path, running: Any, label: Any, retried: int
) -> None:
    broker = InMemoryBroker().with_middlewares(PrometheusMiddleware())

    @broker.task(task_name="prom:labelled")
    async def labelled() -> None: ...

    before = value(metrics_dir, "taskq_tasks_retried_total", "prom:labelled")
    async with running(broker):
        sent = await labelled.kicker().with_labels(_retries=label).kiq()
        await sent.wait_result(timeout=WAIT)
    after = value(metrics_dir, "taskq_tasks_retried_total", "prom:labelled")
    assert after - before == retried


class RefuseUnsigned(TaskiqMiddleware):
    """A middleware of the user's that refuses some messages in ``pre_execute``."""

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        if not message.labels.get("signed"):
            raise PermissionError("unsigned message")
        return message


async def test_a_message_refused_by_a_later_middleware_is_not_left_running(
    metrics_dir: Path, running: Any
) -> None:
    # the running gauge went up in pre_execute and nothing took it down: 20,000 refused
    # messages left taskq_tasks_running at 20,000 (and OpenTelemetry holding 20,000 spans)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = OpenTelemetryMiddleware(tracer_provider=provider)
    broker = InMemoryBroker().with_middlewares(PrometheusMiddleware(), otel, RefuseUnsigned())

    @broker.task(task_name="prom:guarded")
    async def guarded() -> str:
        return "ran"

    async with running(broker):
        for i in range(5):
            message = TaskiqMessage(task_id=f"g{i}", task_name="prom:guarded", labels={})
            await broker.kick(broker.formatter.dumps(message))
        signed = await guarded.kicker().with_labels(signed=True).kiq()
        assert (await signed.wait_result(timeout=WAIT)).return_value == "ran"
        await broker.wait_all()
    assert value(metrics_dir, "taskq_tasks_running", "prom:guarded") == 0
    assert value(metrics_dir, "taskq_tasks_received_total", "prom:guarded") == 6
    assert value(metrics_dir, "taskq_tasks_failed_total", "prom:guarded") == 5  # refused
    process = [span for span in exporter.get_finished_spans() if span.kind.name == "CONSUMER"]
    assert len(process) == 6  # every span ended, the refused runs' as errors
    assert sum(not span.status.is_ok for span in process) == 5


async def test_a_worker_serves_the_metrics_over_http(metrics_dir: Path) -> None:
    port = free_port()
    broker = InMemoryBroker().with_middlewares(
        PrometheusMiddleware(server_addr="127.0.0.1", server_port=port)
    )
    broker.is_worker_process = True

    @broker.task(task_name="prom:served")
    async def served() -> int:
        return 1

    await broker.startup()
    finished = asyncio.Event()
    listening = asyncio.create_task(Receiver(broker).listen(finished))
    try:
        for _ in range(4):
            await (await served.kiq()).wait_result(timeout=WAIT)
        url = f"http://127.0.0.1:{port}/metrics"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
    finally:
        finished.set()
        await listening
        await broker.shutdown()
    text = body.decode()
    assert 'taskq_tasks_received_total{task_name="prom:served"} 4.0' in text
    assert 'taskq_tasks_succeeded_total{task_name="prom:served"} 4.0' in text
    assert 'taskq_tasks_running{task_name="prom:served"} 0.0' in text
    with pytest.raises(OSError, match="refused"):  # shutdown stopped the endpoint
        await asyncio.to_thread(urllib.request.urlopen, url, timeout=2)


def test_a_waiting_process_takes_the_endpoint_over_when_it_frees(
    metrics_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_server, "RETRY_BIND_S", 0.05)
    port = free_port()
    first = MetricsServer(metrics_dir, "127.0.0.1", port)
    second = MetricsServer(metrics_dir, "127.0.0.1", port)
    first.start()
    second.start()
    try:
        assert first.serving
        assert not second.serving
        first.stop()
        eventually_blocking(lambda: second.serving, WAIT, what="the second server to take over")
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        first.stop()
        second.stop()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_groups_of_dead_managers_and_gauges_of_dead_processes_are_removed(
    tmp_path: Path,
) -> None:
    gone = dead_pid()
    (tmp_path / f"group-{gone}").mkdir()
    (tmp_path / f"group-{os.getpid()}").mkdir()
    remove_dead_groups(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"group-{os.getpid()}"]

    group = tmp_path / f"group-{os.getpid()}"
    for name in (
        f"counter_{gone}.db",
        f"gauge_livesum_{gone}.db",
        f"gauge_livesum_{os.getpid()}.db",
    ):
        (group / name).touch()
    forget_dead_processes(group)
    # a dead worker's counters still count; its running gauge does not
    assert sorted(p.name for p in group.iterdir()) == [
        f"counter_{gone}.db",
        f"gauge_livesum_{os.getpid()}.db",
    ]


def test_worker_processes_of_one_manager_share_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROC_DIR_ENV, raising=False)
    monkeypatch.setenv(WORKER_GROUP_ENV, str(os.getppid()))
    directory = prepare_directory(tmp_path)
    assert directory == tmp_path / f"group-{os.getppid()}"
    assert os.environ[MULTIPROC_DIR_ENV] == str(directory)

    monkeypatch.delenv(MULTIPROC_DIR_ENV)
    monkeypatch.delenv(WORKER_GROUP_ENV)
    alone = tmp_path / f"group-{os.getpid()}"
    alone.mkdir()
    (alone / "counter_1.db").touch()  # left by an earlier process with this pid
    assert prepare_directory(tmp_path) == alone
    assert list(alone.iterdir()) == []

    monkeypatch.setenv(MULTIPROC_DIR_ENV, str(tmp_path / "mine"))
    assert prepare_directory(tmp_path) == tmp_path / "mine"  # the user's own, used as is


def test_without_prometheus_client_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"pip install 'taskq-middlewares\[prometheus\]'"):
        PrometheusMiddleware()


# -- where the endpoint listens: this host by default; elsewhere with TLS or consent --


def test_the_endpoint_listens_on_loopback_by_default() -> None:
    assert PrometheusMiddleware().server_addr == "127.0.0.1"


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "localhost", "[::1]"])
def test_loopback_addresses_need_nothing_more(address: str) -> None:
    assert PrometheusMiddleware(server_addr=address).server_addr == address


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.20", "", "metrics.internal"])
def test_an_address_other_hosts_reach_is_refused_without_authentication(address: str) -> None:
    with pytest.raises(SecurityError, match="allow_unauthenticated=True"):
        PrometheusMiddleware(server_addr=address)


def test_it_is_allowed_with_tls_or_with_consent(tmp_path: Path) -> None:
    tls = MetricsTLS("server.pem", "server.key", "clients.pem")
    assert PrometheusMiddleware(server_addr="0.0.0.0", tls=tls).tls is tls
    PrometheusMiddleware(server_addr="0.0.0.0", allow_unauthenticated=True)


@pytest.fixture
def authority(tmp_path: Path) -> tuple[MetricsTLS, ssl.SSLContext, ssl.SSLContext]:
    """A TLS setting of the endpoint, and the contexts of a scraper with and without a cert."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(tmp_path / "server.pem")
    server.private_key_pem.write_to_path(tmp_path / "server.key")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    tls = MetricsTLS(
        str(tmp_path / "server.pem"), str(tmp_path / "server.key"), str(tmp_path / "ca.pem")
    )
    with_cert = ssl.create_default_context()
    ca.configure_trust(with_cert)
    ca.issue_cert("prometheus@scraper").configure_cert(with_cert)
    without_cert = ssl.create_default_context()
    ca.configure_trust(without_cert)
    return tls, with_cert, without_cert


def test_with_tls_only_a_scraper_with_a_client_certificate_reads_the_metrics(
    tmp_path: Path, authority: tuple[MetricsTLS, ssl.SSLContext, ssl.SSLContext]
) -> None:
    tls, with_cert, without_cert = authority
    port = free_port()
    server = MetricsServer(tmp_path, "127.0.0.1", port, tls)
    server.start()
    try:
        assert server.serving
        url = f"https://127.0.0.1:{port}/metrics"
        assert urllib.request.urlopen(url, timeout=5, context=with_cert).status == 200
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(url, timeout=5, context=without_cert).read()
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        server.stop()


RUN_ONE_TASK = """
from taskq.message import TaskiqMessage
from taskq.result import TaskiqResult
from taskq_middlewares import PrometheusMiddleware

middleware = PrometheusMiddleware()
message = TaskiqMessage(task_id="t", task_name="app:job", labels={}, args=[], kwargs={})
middleware.pre_execute(message)
middleware.post_execute(message, TaskiqResult(is_err=False, return_value=None, execution_time=0.01))
"""


def run_worker_processes(directory: Path, count: int) -> None:
    """Run ``count`` processes one after another, each counting one task in ``directory``."""
    env = {**os.environ, MULTIPROC_DIR_ENV: str(directory)}
    for _ in range(count):
        subprocess.run([sys.executable, "-c", RUN_ONE_TASK], env=env, check=True)


def test_the_files_of_replaced_workers_are_merged_and_their_counts_kept(tmp_path: Path) -> None:
    # each process left a counter and a histogram file, read at every scrape: after 500
    # workers replaced by --max-tasks-per-child 1, 1,000 files and a scrape of 60 to 80 ms
    group = tmp_path / f"group-{os.getpid()}"
    run_worker_processes(group, 12)
    collected = {m.name: m for m in GroupCollector(group).collect()}
    assert sorted(p.name for p in group.glob("*.db")) == [
        "counter_merged.db",
        "histogram_merged.db",
    ]
    [received] = collected["taskq_tasks_received"].samples
    assert received.value == 12
    count = next(
        s for s in collected["taskq_task_execution_seconds"].samples if s.name.endswith("_count")
    )
    assert count.value == 12
    run_worker_processes(group, 1)  # a new worker merges what the last one left
    assert value(group, "taskq_tasks_succeeded_total", "app:job") == 13
    assert len(list(group.glob("*.db"))) == 2


def test_a_scrape_while_a_worker_creates_its_files_reads_the_others(tmp_path: Path) -> None:
    # a starting process creates each file empty and sizes it a moment later: a scrape in
    # between failed whole (prometheus-client could not read the empty file's header)
    group = tmp_path / f"group-{os.getpid()}"
    run_worker_processes(group, 1)
    (group / f"counter_{os.getpid()}.db").touch()
    assert value(group, "taskq_tasks_succeeded_total", "app:job") == 1


def test_an_empty_file_of_a_dead_process_is_removed_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # its process died between creating and sizing it: it was warned about at every scrape
    group = tmp_path / f"group-{os.getpid()}"
    run_worker_processes(group, 1)
    empty = group / f"counter_{dead_pid()}.db"
    empty.touch()
    assert value(group, "taskq_tasks_succeeded_total", "app:job") == 1
    assert not empty.exists()
    assert "cannot read" not in caplog.text


def test_files_in_a_directory_of_your_own_are_left_alone(tmp_path: Path) -> None:
    # PROMETHEUS_MULTIPROC_DIR set by hand may be shared with processes of another pid
    # namespace (another container): their files are not taken for a dead process's
    mine = tmp_path / "mine"
    run_worker_processes(mine, 2)
    assert value(mine, "taskq_tasks_received_total", "app:job") == 2
    assert len([p for p in mine.glob("counter_*.db")]) == 2
