"""`OpenTelemetryMiddleware`: producer and consumer spans of one trace, in one process."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskq import AsyncTaskiqTask, TaskiqMessage
from taskq.task_events import MAX_TASK_ID_CHARS, stored_task_id, stored_task_name
from taskq_inmemory import InMemoryBroker
from taskq_middlewares import OpenTelemetryMiddleware


def traced_broker() -> tuple[InMemoryBroker, InMemorySpanExporter, TracerProvider]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    broker = InMemoryBroker().with_middlewares(OpenTelemetryMiddleware(tracer_provider=provider))
    return broker, exporter, provider


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (span,) = [span for span in spans if span.name == name]
    return span


async def test_the_consumer_span_is_a_child_of_the_producer_span() -> None:
    broker, exporter, provider = traced_broker()

    @broker.task(task_name="add")
    async def add(a: int, b: int) -> int:
        with provider.get_tracer("test").start_as_current_span("inside"):
            return a + b

    async with broker:
        task = await add.kiq(1, 2)
        result = await task.wait_result(timeout=5)
    assert result.return_value == 3
    spans = exporter.get_finished_spans()
    send, process = by_name(spans, "send add"), by_name(spans, "process add")
    assert send.kind is trace.SpanKind.PRODUCER
    assert process.kind is trace.SpanKind.CONSUMER
    assert process.context.trace_id == send.context.trace_id
    assert process.parent is not None
    assert process.parent.span_id == send.context.span_id
    for span, operation in ((send, "send"), (process, "process")):
        assert span.attributes is not None
        assert span.attributes["messaging.system"] == "taskq"
        assert span.attributes["messaging.operation.type"] == operation
        assert span.attributes["messaging.message.id"] == task.task_id
        assert span.attributes["taskq.task.name"] == "add"
    assert process.status.is_ok
    inside = by_name(spans, "inside")
    assert inside.parent is not None
    assert inside.parent.span_id == process.context.span_id


async def test_a_failed_run_records_its_exception_on_the_span() -> None:
    broker, exporter, _ = traced_broker()

    @broker.task(task_name="boom")
    async def boom() -> None:
        raise KeyError("missing")

    async with broker:
        task = await boom.kiq()
        await task.wait_result(timeout=5)
    process = by_name(exporter.get_finished_spans(), "process boom")
    assert process.status.status_code is trace.StatusCode.ERROR
    (event,) = process.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "KeyError"


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


async def test_an_error_whose_str_raises_still_ends_its_span_marked_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the span was never ended (lost) and its context stayed attached in the worker
    broker, exporter, _ = traced_broker()

    @broker.task(task_name="unprintable")
    async def unprintable() -> None:
        raise UnprintableError

    async with broker:
        result = await (await unprintable.kiq()).wait_result(timeout=5)
    assert isinstance(result.error, UnprintableError)
    process = by_name(exporter.get_finished_spans(), "process unprintable")
    assert process.status.status_code is trace.StatusCode.ERROR
    assert process.status.description == "UnprintableError"
    assert "a middleware failed" not in caplog.text


async def test_a_huge_task_id_or_name_is_kept_bounded_on_the_spans() -> None:
    # a 1 MB task id (a client's with_task_id) was a 1 MB attribute of both spans, and a 1 MB
    # task name a 1 MB span name and attribute, for every exporter to ship
    broker, exporter, _ = traced_broker()
    name = "n" * 1_000_000

    @broker.task(task_name=name)
    async def job() -> int:
        return 1

    async with broker:
        task = await job.kicker().with_task_id("i" * 1_000_000).kiq()
        assert (await task.wait_result(timeout=5)).return_value == 1
    spans = exporter.get_finished_spans()
    assert sorted(span.name for span in spans) == [
        f"process {stored_task_name(name)}",
        f"send {stored_task_name(name)}",
    ]
    for span in spans:
        assert span.attributes is not None
        assert span.attributes["messaging.message.id"] == stored_task_id(task.task_id)
        assert max(len(str(value)) for value in span.attributes.values()) <= MAX_TASK_ID_CHARS


@pytest.mark.parametrize(
    "labels",
    [
        {"baggage": "k=v," * 250_000},  # 1 MB: logged whole by the propagator, per message
        {"baggage": "%" * 1_000_000},
        {"tracestate": "a=b," * 250_000},
        {"traceparent": "garbage"},
        {"traceparent": 5, "tracestate": ["a=b"], "baggage": {"k": "v"}},
    ],
)
async def test_a_malformed_trace_context_neither_fails_the_task_nor_floods_the_log(
    labels: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    broker, exporter, _ = traced_broker()

    @broker.task(task_name="add")
    async def add(a: int, b: int) -> int:
        return a + b

    with caplog.at_level(logging.DEBUG):
        async with broker:
            # straight to the worker, as another program's message would come
            message = TaskiqMessage(task_id="t1", task_name="add", labels=labels, args=[1, 2])
            await broker.kick(broker.formatter.dumps(message))
            task: AsyncTaskiqTask[int] = AsyncTaskiqTask("t1", broker.result_backend)
            result = await task.wait_result(timeout=5)
    assert result.return_value == 3
    assert [span.name for span in exporter.get_finished_spans()] == ["process add"]
    assert max((len(record.getMessage()) for record in caplog.records), default=0) < 2_000


async def test_two_runs_of_one_task_id_at_once_each_end_their_span() -> None:
    # a redelivered message, or a client reusing a task id, runs twice at once: the spans were
    # kept by task id, so the second replaced the first, which never ended (1 span of 2)
    broker, exporter, _ = traced_broker()
    running: list[int] = []
    both = asyncio.Event()

    @broker.task(task_name="slow")
    async def slow() -> None:
        running.append(1)
        if len(running) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), timeout=5)

    async with broker:
        for _ in range(2):
            message = TaskiqMessage(task_id="same", task_name="slow", labels={})
            await broker.kick(broker.formatter.dumps(message))
        await broker.wait_all()
    assert both.is_set()
    assert [span.name for span in exporter.get_finished_spans()] == ["process slow"] * 2
