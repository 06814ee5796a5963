"""Unique tasks: ``task.kicker().with_unique(...).kiq(...)`` sends nothing while one is pending.

The client claims the task's key in the broker's `UniqueKeyStore` (one atomic step) under the
id of the task it is about to send. If another task holds the key, `kiq` returns that task's
handle and sends nothing; otherwise it sends the task with the key in the `UNIQUE_LABEL`
label, and the worker frees the key when the task ends for good (`HeldKey`; a retry keeps
it, see `keep_unique_key`). The key also frees itself after its TTL, so a lost task cannot
block its key for ever. A schedule added by a unique kicker carries the request in its
labels (`UNIQUE_TTL_LABEL`), and `taskq.kicker.send_task` makes each of its sends unique.

The default key is the task's name and a digest of its arguments serialized canonically
(JSON with sorted keys; pydantic models, dataclasses, enums, sets, dates and UUIDs are
turned into plain data first).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import json
import logging
import math
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskq.control.stores import unique_store_of
from taskq.exceptions import SharedStoreRequiredError, UniqueKeyError
from taskq.labels import UNIQUE_LABEL
from taskq.task import AsyncTaskiqTask
from taskq.task_events import quoted, stored_task_id

if TYPE_CHECKING:
    from taskq.broker import AsyncBroker
    from taskq.message import TaskiqMessage

logger = logging.getLogger("taskq.unique")

#: Seconds a unique key is held at most when ``with_unique`` gives no ``ttl`` (one hour).
DEFAULT_UNIQUE_TTL_S = 3600.0
#: The label of a schedule made by a unique kicker: each send of the schedule is unique, its
#: key held this many seconds at most (the key itself, if given, rides in `UNIQUE_LABEL`).
UNIQUE_TTL_LABEL = "unique_ttl"


@dataclass(frozen=True)
class Uniqueness:
    """What ``with_unique`` asked for: a key (None: made from the arguments) and a TTL."""

    key: str | None
    ttl_s: float

    @classmethod
    def of(cls, key: str | None, ttl: float | datetime.timedelta) -> Uniqueness:
        """Check ``ttl`` (seconds or a timedelta, positive and finite) and ``key``.

        Raises:
            ValueError: ``ttl`` is not a positive finite number or ``key`` is an empty string.
        """
        ttl_s = ttl.total_seconds() if isinstance(ttl, datetime.timedelta) else float(ttl)
        if not 0 < ttl_s < math.inf:  # a store keeps a key for a finite time
            raise ValueError(f"a unique task's ttl must be positive seconds, got {ttl!r}")
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError(f"a unique task's key must be a non-empty string, got {quoted(key)}")
        return cls(key, ttl_s)

    def as_labels(self) -> dict[str, Any]:
        """The labels that carry this uniqueness with a schedule to each of its sends."""
        labels: dict[str, Any] = {UNIQUE_TTL_LABEL: self.ttl_s}
        if self.key is not None:
            labels[UNIQUE_LABEL] = self.key
        return labels

    @classmethod
    def take_from(cls, labels: dict[str, Any]) -> Uniqueness:
        """Remove the labels of `as_labels` from ``labels``; return the uniqueness they ask for.

        Raises:
            ValueError: the TTL is not a positive number or the key is empty.
        """
        ttl = labels.pop(UNIQUE_TTL_LABEL)
        key = labels.pop(UNIQUE_LABEL, None)
        try:
            ttl_s = float(ttl)
        except (TypeError, ValueError):
            raise ValueError(f"label {UNIQUE_TTL_LABEL} must be seconds, got {ttl!r}") from None
        return cls.of(key, ttl_s)


def default_key(task_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The task's name and a digest of its arguments, equal for equal arguments.

    Raises:
        UniqueKeyError: an argument has no canonical form.
    """
    try:
        text = json.dumps(
            [list(args), kwargs],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=_plain,
        )
    except (TypeError, ValueError) as exc:
        raise UniqueKeyError(task_name=task_name, reason=str(exc)) from None
    # imported here, as decimal in _plain: every worker imports this module, few make keys,
    # and the two cost a worker process 1.1 MB of memory
    import hashlib

    return f"{task_name}:{hashlib.sha256(text.encode()).hexdigest()}"


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):  # pydantic
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(json.dumps(item, sort_keys=True, default=_plain) for item in value)
    import decimal

    if isinstance(value, (datetime.date, datetime.time, uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__qualname__} has no canonical form")


async def send_unique(
    broker: AsyncBroker,
    uniqueness: Uniqueness,
    task_name: str,
    labels: dict[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    return_type: Any,
    task_id: str | None,
) -> AsyncTaskiqTask[Any]:
    """Send the task unless a task holds its key; return the handle of the one that runs."""
    from taskq.kicker import send_task

    broker = broker.target_broker()
    task_id = task_id or broker.id_generator()
    key, holder = await claim_key(broker, uniqueness, task_name, args, kwargs, task_id)
    if holder is not None:
        return AsyncTaskiqTask(holder, broker.result_backend, return_type)
    try:
        return await send_task(
            broker, task_name, {**labels, UNIQUE_LABEL: key}, args, kwargs, return_type, task_id
        )
    except BaseException:
        await release_quietly(broker, key, task_id)  # the send's error is the one to report
        raise


async def claim_key(
    broker: AsyncBroker,
    uniqueness: Uniqueness,
    task_name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    task_id: str,
) -> tuple[str, str | None]:
    """Claim the call's key for ``task_id`` in ``broker``'s store.

    Returns the key and the id of the task that already held it (None: ``task_id`` holds it
    now, and its message must carry the key in `UNIQUE_LABEL`).
    """
    key = uniqueness.key or default_key(task_name, args, kwargs)
    return key, await unique_store_of(broker).claim(key, task_id, uniqueness.ttl_s)


async def release_quietly(broker: AsyncBroker, key: str, task_id: str) -> None:
    """Free ``key`` claimed by ``task_id`` whose message was not sent; ignore a failure."""
    with contextlib.suppress(Exception):
        await unique_store_of(broker).release(key, task_id)


@dataclass
class HeldKey:
    """The unique key a message carries to the worker, freed once when its task ends.

    ``kept``: the task goes on under its task id in a message sent again (a retry, a run sent
    back to wait for its rate limit), which carries the key on: this run does not free it.
    """

    key: str
    task_id: str
    kept: bool = False
    freed: bool = False

    @classmethod
    def of(cls, message: TaskiqMessage) -> HeldKey | None:
        """The key ``message`` holds (None: it is not a unique task's)."""
        key = message.labels.get(UNIQUE_LABEL)
        return cls(key, message.task_id) if isinstance(key, str) and key else None

    async def free(self, broker: AsyncBroker) -> None:
        """Free the key (once) in ``broker``'s store; log a failure, never raise.

        A worker whose broker has no store (a ``cross_process`` broker not given one) runs the
        task and logs one warning: the key frees itself after its TTL.
        """
        if self.freed or self.kept:
            return
        self.freed = True
        try:
            store = unique_store_of(broker)
        except SharedStoreRequiredError as error:  # the sender had a store, this worker has none
            logger.warning(
                "Task %s: its unique key %s cannot be freed here (%s); it frees itself after "
                "its TTL",
                stored_task_id(self.task_id),
                quoted(self.key),
                error,
            )
            return
        try:
            await store.release(self.key, self.task_id)
        except Exception:
            logger.exception(
                "Task %s: its unique key could not be freed; it frees itself after its TTL",
                stored_task_id(self.task_id),
            )


#: The key held by the message the worker runs in this context (set by the receiver).
running_key: ContextVar[HeldKey | None] = ContextVar("taskq_running_key", default=None)


def keep_unique_key(message: TaskiqMessage) -> None:
    """Keep the unique key of ``message`` held after its run: its task was sent again.

    A middleware that sends a failed task again under its task id (a retry) calls it from
    its hooks, so the key stays with the task until its last run ends; without it the
    worker frees the key when this run ends. Nothing happens outside a worker's run or for a
    task that is not unique.
    """
    held = running_key.get()
    if held is not None and held.task_id == message.task_id:
        held.kept = True
