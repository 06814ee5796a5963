"""`OpenTelemetryMiddleware` across a real ``taskq worker`` process, on the Redis broker.

The worker's app keeps its spans in the SDK's in-memory exporter and writes them to a file at
shutdown; the test sends as the client, with its own exporter, and joins the two.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq.testing import eventually_blocking
from taskq_redis.testing import redis_prefix, redis_url  # noqa: F401 - fixtures

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

APP = """
import json
import os

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskq import TaskiqEvents
from taskq_middlewares import OpenTelemetryMiddleware
from taskq_redis import RedisStreamBroker

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
broker = RedisStreamBroker(
    os.environ["TEST_REDIS_URL"], key_prefix=os.environ["TEST_PREFIX"]
).with_middlewares(OpenTelemetryMiddleware(tracer_provider=provider))


@broker.task(task_name="double")
async def double(n: int) -> int:
    return 2 * n


@broker.task(task_name="fail")
async def fail() -> None:
    raise RuntimeError("on purpose")


@broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
def dump_spans(state) -> None:
    spans = [json.loads(span.to_json()) for span in exporter.get_finished_spans()]
    with open(os.environ["TEST_SPANS_FILE"], "w") as file:
        json.dump(spans, file)
"""


@pytest.fixture
def app_dir(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    """A directory holding the app, importable here and by the worker it starts in it."""
    (tmp_path / "traced_app.py").write_text(textwrap.dedent(APP))
    monkeypatch.setenv("TEST_REDIS_URL", redis_url)
    monkeypatch.setenv("TEST_PREFIX", redis_prefix)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("traced_app", None)


def test_a_worker_process_continues_the_senders_trace(app_dir: Path) -> None:
    import asyncio

    import traced_app

    async def send() -> list[str]:
        async with traced_app.broker:
            return [
                (await traced_app.double.kiq(21)).task_id,
                (await traced_app.fail.kiq()).task_id,
            ]

    sent_ids = asyncio.run(send())
    producers = {
        span.attributes["messaging.message.id"]: span
        for span in traced_app.exporter.get_finished_spans()
    }
    spans_file = app_dir / "spans.json"
    log = app_dir / "worker.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taskq.cli",
                "worker",
                "traced_app:broker",
                "--workers",
                "1",
                "--log-tasks",
            ],
            cwd=app_dir,
            env={**os.environ, "TEST_SPANS_FILE": str(spans_file)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            eventually_blocking(
                lambda: log.read_text().count("taskq.tasks") >= 2, 60, what="both tasks to run"
            )
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(60) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
    consumers = {
        span["attributes"]["messaging.message.id"]: span
        for span in json.loads(spans_file.read_text())
    }
    for task_id in sent_ids:
        producer, consumer = producers[task_id], consumers[task_id]
        assert consumer["kind"] == "SpanKind.CONSUMER"
        assert consumer["context"]["trace_id"] == f"0x{producer.context.trace_id:032x}"
        assert consumer["parent_id"] == f"0x{producer.context.span_id:016x}"
        assert consumer["attributes"]["messaging.destination.name"] == "taskq"
    failed: dict[str, Any] = consumers[sent_ids[1]]
    assert failed["status"]["status_code"] == "ERROR"
    assert [event["name"] for event in failed["events"]] == ["exception"]
    assert consumers[sent_ids[0]]["status"]["status_code"] == "UNSET"
