"""taskq middlewares: retries with backoff, Prometheus metrics and OpenTelemetry traces."""

from taskq_middlewares.errors import NoRetryError, RetryConfigurationError
from taskq_middlewares.metrics_server import MetricsTLS
from taskq_middlewares.otel import OpenTelemetryMiddleware
from taskq_middlewares.prometheus import PrometheusMiddleware
from taskq_middlewares.simple_retry import SimpleRetryMiddleware
from taskq_middlewares.smart_retry import SmartRetryMiddleware

__all__ = [
    "MetricsTLS",
    "NoRetryError",
    "OpenTelemetryMiddleware",
    "PrometheusMiddleware",
    "RetryConfigurationError",
    "SimpleRetryMiddleware",
    "SmartRetryMiddleware",
]
