"""The middlewares under their reference module path; they come from taskq-middlewares."""

from typing import Any

from taskq import _lazy

_NAMES = ("SimpleRetryMiddleware", "SmartRetryMiddleware", "PrometheusMiddleware")


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return _lazy.load(name)
    raise AttributeError(f"module 'taskq.middlewares' has no attribute {name!r}")
