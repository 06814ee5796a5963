"""A task's limits: ``rate_limit="100/s"``, ``max_concurrency=5``, applied per ``limit_key``.

``@broker.task(rate_limit=..., max_concurrency=..., limit_key=...)`` takes these three out of
the labels (they are settings of the worker, never sent with a message) and checks them when
the task is registered.

- ``rate_limit``: ``"N/s"``, ``"N/m"`` or ``"N/h"`` (also ``sec``/``second(s)``,
  ``min``/``minute(s)``, ``hour(s)``): at most N runs start in any window of that length.
- ``max_concurrency``: at most this many runs at once.
- ``limit_key``: a function of the task's arguments returning the key the limits apply per,
  called with the arguments by name (however they were passed to ``kiq``), e.g.
  ``lambda customer_id, **_: customer_id``; without it the limits apply to the task as a
  whole.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskq.exceptions import InvalidTaskLimitError, TaskArgumentsError

#: Seconds in the period each spelling of a rate names.
PERIODS_S = {
    **dict.fromkeys(("s", "sec", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hour", "hours"), 3600.0),
}
#: Seconds after which a run refused for want of a concurrency place tries again (a limiter
#: that learns of releases wakes a waiting run earlier). Longer than the receiver's local
#: wait (`taskq.receiver.limits.LOCAL_WAIT_S`), so that such a run goes back to the queue on
#: brokers that can delay it, instead of holding a worker slot.
CONCURRENCY_RETRY_S = 0.5
#: The labels `TaskLimits.take_from` takes out of a task's labels.
LIMIT_OPTIONS = ("rate_limit", "max_concurrency", "limit_key")

_RATE = re.compile(r"\s*(\d+)\s*/\s*([a-z]+)\s*")
_RATE_EXPECTED = 'a string "N/s", "N/m" or "N/h" with N a positive integer'
_CONCURRENCY_EXPECTED = "a positive integer"


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` runs start in any window of ``period_s`` seconds."""

    count: int
    period_s: float

    @classmethod
    def parse(cls, spec: str) -> RateLimit:
        """Read ``"100/s"``, ``"5/minute"``, ``"2/h"``...

        Raises:
            InvalidTaskLimitError: ``spec`` is not such a string.
        """
        match = _RATE.fullmatch(spec.lower()) if isinstance(spec, str) else None
        if match is None or match[2] not in PERIODS_S or int(match[1]) < 1:
            raise InvalidTaskLimitError(option="rate_limit", value=spec, expected=_RATE_EXPECTED)
        return cls(int(match[1]), PERIODS_S[match[2]])


@dataclass(frozen=True)
class TaskLimits:
    """The limits of one task: a `RateLimit`, a concurrency bound, and the key they apply per."""

    rate: RateLimit | None = None
    max_concurrency: int | None = None
    limit_key: Callable[..., Any] | None = None
    #: The task function's signature, to pass its arguments to ``limit_key`` by name.
    signature: inspect.Signature | None = field(default=None, compare=False)

    @classmethod
    def take_from(
        cls, labels: dict[str, Any], func: Callable[..., Any] | None = None
    ) -> TaskLimits | None:
        """Remove the limit options from ``labels``; return their limits (None: no limit).

        ``func`` is the task function, whose parameter names ``limit_key`` receives.

        Raises:
            InvalidTaskLimitError: an option has a value it cannot have.
        """
        if not any(option in labels for option in LIMIT_OPTIONS):
            return None
        spec = labels.pop("rate_limit", None)
        concurrency = labels.pop("max_concurrency", None)
        limit_key = labels.pop("limit_key", None)
        if concurrency is not None and (
            type(concurrency) is not int or concurrency < 1  # not bool
        ):
            raise InvalidTaskLimitError(
                option="max_concurrency", value=concurrency, expected=_CONCURRENCY_EXPECTED
            )
        if limit_key is not None and not callable(limit_key):
            raise InvalidTaskLimitError(
                option="limit_key", value=limit_key, expected="a function of the task's arguments"
            )
        rate = None if spec is None else RateLimit.parse(spec)
        if rate is None and concurrency is None:
            if limit_key is None:
                return None
            raise InvalidTaskLimitError(
                option="limit_key",
                value=limit_key,
                expected="given with a rate_limit or a max_concurrency",
            )
        signature = None
        if limit_key is not None and func is not None:
            try:
                signature = inspect.signature(func)
            except (TypeError, ValueError):  # a builtin without one: positions pass as given
                signature = None
        return cls(rate, concurrency, limit_key, signature)

    def key(self, task_name: str, args: list[Any], kwargs: dict[str, Any]) -> str:
        """The key these limits count under for a run with these arguments.

        Raises:
            TaskArgumentsError: ``limit_key`` failed for these arguments.
        """
        if self.limit_key is None:
            return task_name
        try:
            if self.signature is None:
                part = self.limit_key(*args, **kwargs)
            else:
                part = self.limit_key(**_by_name(self.signature, args, kwargs))
        except Exception as exc:
            raise TaskArgumentsError(
                task_name=task_name, reason=f"limit_key failed: {exc!r}"
            ) from exc
        return f"{task_name}:{part}"


def _by_name(
    signature: inspect.Signature, args: list[Any], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The arguments of a call, each under its parameter's name (``**kwargs`` spread out)."""
    named: dict[str, Any] = {}
    for name, value in signature.bind_partial(*args, **kwargs).arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        else:  # *args stay a tuple under their name
            named[name] = value
    return named
