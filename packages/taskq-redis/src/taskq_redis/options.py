"""`BrokerOptions`: a Redis broker's settings, as its parts (consumer, dead letters...) get them."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from taskq_redis.keys import QueueKeys

if TYPE_CHECKING:
    from typing_extensions import Self

_Value = TypeVar("_Value")


@dataclass(frozen=True)
class BrokerOptions:
    """The settings of one `RedisStreamBroker`, checked; see the broker for their meaning.

    The broker makes it from its constructor's arguments (filling in the defaults that depend
    on ``lease_s``) and hands it to the parts that need it, which read nothing else of the
    broker.

    Raises:
        ValueError: An option out of its range (on creation, and on `replace`).
    """

    queue_name: str
    consumer_group_name: str
    keys: QueueKeys
    lease_s: float
    heartbeat_interval_s: float
    reclaim_interval_s: float
    block_ms: int
    batch_size: int
    priority_levels: int
    max_deliveries: int | None
    max_stream_length: int | None
    delay_check_interval_s: float
    reconnect_max_delay_s: float
    send_timeout_s: float

    def __post_init__(self) -> None:
        for name in _POSITIVE:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if not 1 <= self.priority_levels <= 100:
            raise ValueError(f"priority_levels must be 1 to 100, got {self.priority_levels!r}")
        if self.heartbeat_interval_s >= self.lease_s:
            raise ValueError("heartbeat_interval_s must be shorter than lease_s")

    @property
    def lease_ms(self) -> int:
        """``lease_s`` in whole milliseconds (at least 1), as Redis takes it."""
        return max(1, round(self.lease_s * 1000))

    def replace(self, **changes: Any) -> BrokerOptions:
        """A copy with ``changes``, checked again."""
        return replace(self, **changes)


_POSITIVE = tuple(
    field.name
    for field in fields(BrokerOptions)
    if field.name not in ("queue_name", "consumer_group_name", "keys", "priority_levels")
)


class BrokerOption(Generic[_Value]):
    """A broker attribute that is one field of its ``options`` (``broker.lease_s``, ...).

    Reading gives the field; setting replaces the broker's options with a checked copy, which
    parts made afterwards (a new ``listen()``, the next ``dead_letters``) receive.
    """

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, broker: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, broker: _HasOptions, owner: type[Any]) -> _Value: ...

    def __get__(self, broker: _HasOptions | None, owner: type[Any]) -> Self | _Value:
        if broker is None:
            return self
        value: _Value = getattr(broker.options, self.name)
        return value

    def __set__(self, broker: _HasOptions, value: _Value) -> None:
        broker.options = broker.options.replace(**{self.name: value})


class _HasOptions(Protocol):
    options: BrokerOptions
