"""`OpenTelemetryMiddleware`: a producer span at `kiq`, a consumer span around each run.

The producer's trace context travels in the message labels (W3C ``traceparent``,
``tracestate``, ``baggage``: the fields of the global propagator), so the worker's span joins
the sender's trace. Attributes follow OpenTelemetry's messaging semantic conventions.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from contextlib import suppress
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from taskq.abc.middleware import TaskiqMiddleware
from taskq.exceptions import NoResultError, TaskRejectedError
from taskq.task_events import stored_task_id, stored_task_name

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from taskq.message import TaskiqMessage
    from taskq.result import TaskiqResult

logger = logging.getLogger("taskq.otel")

#: The value of ``messaging.system`` on every span.
MESSAGING_SYSTEM = "taskq"
#: Producer spans kept until their send completes; past this many (sends that failed) the
#: oldest are ended, marked as errors.
MAX_PENDING_SENDS = 10_000
#: The longest trace context label read from a message, in characters: W3C's limit for
#: ``tracestate`` and ``baggage`` (a ``traceparent`` is 55). A longer one is ignored: the
#: propagators would refuse it too, but after logging it whole (a 1 MB line per message).
MAX_CONTEXT_LABEL_CHARS = 8192
#: Results that steer the worker rather than report a failure.
_CONTROL_FLOW = (NoResultError, TaskRejectedError)


class OpenTelemetryMiddleware(TaskiqMiddleware):
    """Traces tasks: a PRODUCER span per `kiq`, a CONSUMER span per run, in one trace.

    The producer span is named ``send <task name>``, the consumer span ``process <task name>``;
    the consumer's parent is the producer, through the context carried in the labels.

    Spans carry ``messaging.system`` (``taskq``), ``messaging.operation.type`` and
    ``messaging.operation.name`` (``send`` or ``process``), ``messaging.message.id`` (the task
    id), ``messaging.destination.name`` (the broker's queue, where it has one) and
    ``taskq.task.name``. A task id or name over 512 characters appears as the event stores
    keep it (`stored_task_id`, `stored_task_name`). A failed run records the exception on its
    span and sets the span's status to error. Spans opened inside the task are children of
    the consumer span.

    The worker reads the trace context from the labels the propagator uses, when they are
    strings of at most `MAX_CONTEXT_LABEL_CHARS`; a malformed one starts a new trace.

    Only ``opentelemetry-api`` is required (``pip install 'taskq-middlewares[otel]'``): with no
    SDK configured, spans cost next to nothing and go nowhere.

    Args:
        tracer_provider: Where spans go (default: the global tracer provider).
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        """Get the tracer; fail here when opentelemetry-api is not installed."""
        super().__init__()
        try:
            from opentelemetry import trace
        except ImportError as exc:
            raise ImportError(
                "OpenTelemetryMiddleware needs opentelemetry-api: "
                "pip install 'taskq-middlewares[otel]'"
            ) from exc
        self.tracer: Tracer = trace.get_tracer("taskq", tracer_provider=tracer_provider)
        self._sending: OrderedDict[str, Span] = OrderedDict()
        # the run's span, kept in the run's context rather than by task id: a task id
        # delivered twice (a redelivery, a reused id) runs twice at once, and keyed by id
        # the first run's span was replaced by the second's and never ended
        self._run: ContextVar[_Run | None] = ContextVar(f"taskq_otel_run_{id(self)}", default=None)

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        """Open the producer span and put its context in the message labels."""
        from opentelemetry import propagate, trace

        span = self.tracer.start_span(
            f"send {stored_task_name(message.task_name)}",
            kind=trace.SpanKind.PRODUCER,
            attributes=self._attributes(message, "send"),
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        message.labels.update(carrier)
        self._sending[message.task_id] = span
        while len(self._sending) > MAX_PENDING_SENDS:
            _, lost = self._sending.popitem(last=False)
            lost.set_status(trace.StatusCode.ERROR, "the send did not complete")
            lost.end()
        return message

    def post_send(self, message: TaskiqMessage) -> None:
        """Close the producer span: the broker took the message."""
        span = self._sending.pop(message.task_id, None)
        if span is not None:
            span.end()

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        """Open the consumer span as a child of the sender's, current while the task runs."""
        from opentelemetry import context, propagate, trace

        span = self.tracer.start_span(
            f"process {stored_task_name(message.task_name)}",
            context=propagate.extract(_context_carrier(message)),
            kind=trace.SpanKind.CONSUMER,
            attributes=self._attributes(message, "process"),
        )
        run = _Run(span, context.attach(trace.set_span_in_context(span)))
        run.outer = self._run.set(run)
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        """Close the consumer span, recording the task's error on it."""
        from opentelemetry import context, trace

        run = self._run.get()
        if run is None or run.outer is None:
            return
        with suppress(ValueError):  # reset from another context: the span still ends
            self._run.reset(run.outer)  # a run nested in this one's context ends before it
        span = run.span
        error = result.error
        try:
            if error is not None and not isinstance(error, _CONTROL_FLOW):
                span.set_status(trace.StatusCode.ERROR, _describe(error))
                with suppress(Exception):  # str() raised: the status still names the type
                    span.record_exception(error)
        finally:  # an error whose str() raises still ends its span
            span.end()
            context.detach(run.token)

    def _attributes(self, message: TaskiqMessage, operation: str) -> dict[str, str]:
        attributes = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": operation,
            "messaging.operation.name": operation,
            "messaging.message.id": stored_task_id(message.task_id),
            "taskq.task.name": stored_task_name(message.task_name),
        }
        queue = getattr(self.broker, "queue_name", None)
        if isinstance(queue, str):
            attributes["messaging.destination.name"] = queue
        return attributes


class _Run:
    """The consumer span of one run, the context token that made it current, the var's token."""

    __slots__ = ("outer", "span", "token")

    def __init__(self, span: Span, token: Token[Context]) -> None:
        self.span = span
        self.token = token
        self.outer: Token[_Run | None] | None = None


def _context_carrier(message: TaskiqMessage) -> dict[str, str]:
    """The labels of ``message`` the propagator reads, without those too long to be a context."""
    from opentelemetry import propagate

    carrier = {}
    for name in propagate.get_global_textmap().fields:
        value = message.labels.get(name)
        if not isinstance(value, str):
            continue
        if len(value) > MAX_CONTEXT_LABEL_CHARS:
            logger.warning(
                "Task %s: label %s holds %d characters, more than a trace context has; ignored",
                stored_task_id(message.task_id),
                name,
                len(value),
            )
            continue
        carrier[name] = value
    return carrier


def _describe(error: BaseException) -> str:
    """``Type: message`` of ``error``, or ``Type`` alone when its ``str()`` raises."""
    try:
        return f"{type(error).__name__}: {error}"
    except Exception:
        return type(error).__name__
