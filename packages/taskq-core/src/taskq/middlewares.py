"""The middlewares under their reference module path; they come from taskq-middlewares."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq import _lazy

if TYPE_CHECKING:
    from taskq_middlewares import PrometheusMiddleware, SimpleRetryMiddleware, SmartRetryMiddleware

__all__ = ["PrometheusMiddleware", "SimpleRetryMiddleware", "SmartRetryMiddleware"]
__getattr__ = _lazy.module_getattr(__name__, tuple(__all__))
