"""`BrokerOptions`: a Redis broker's settings, as its parts (consumer, dead letters...) get them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from taskq.toolkit import check_count
from taskq_redis.keys import MAX_PRIORITY_LEVELS, QueueKeys

if TYPE_CHECKING:
    from typing_extensions import Self

_Value = TypeVar("_Value")

#: The longest setting in seconds (and ``block_ms``): a day. Longer ones (``inf``, ``1e300``)
#: overflow the milliseconds Redis takes, or the clocks waits are timed with.
MAX_SECONDS = 86_400.0
MAX_BLOCK_MS = 86_400_000
#: The shortest ``lease_s``: leases are timed in whole milliseconds.
MIN_LEASE_S = 0.001


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
        if not MIN_LEASE_S <= self.lease_s <= MAX_SECONDS:
            raise ValueError(
                f"lease_s must be {MIN_LEASE_S:g} to {MAX_SECONDS:g} seconds, got {self.lease_s!r}"
            )
        for name in _SECONDS:
            value = getattr(self, name)
            if not 0 < value <= MAX_SECONDS:
                raise ValueError(
                    f"{name} must be more than 0 and at most {MAX_SECONDS:g} seconds, got {value!r}"
                )
        check_count("block_ms", self.block_ms, maximum=MAX_BLOCK_MS)  # 1.5: Redis refuses it
        check_count("batch_size", self.batch_size)
        for name in ("max_deliveries", "max_stream_length"):
            value = getattr(self, name)
            if value is not None:
                check_count(name, value, alternative="or None")
        check_count("priority_levels", self.priority_levels, maximum=MAX_PRIORITY_LEVELS)
        if self.heartbeat_interval_s >= self.lease_s:
            raise ValueError("heartbeat_interval_s must be shorter than lease_s")

    @property
    def lease_ms(self) -> int:
        """``lease_s`` in whole milliseconds (at least 1), as Redis takes it."""
        return max(1, round(self.lease_s * 1000))

    def replace(self, **changes: Any) -> BrokerOptions:
        """A copy with ``changes``, checked again."""
        return replace(self, **changes)


#: The settings in seconds besides ``lease_s``: each more than 0 and at most `MAX_SECONDS`.
_SECONDS = (
    "heartbeat_interval_s",
    "reclaim_interval_s",
    "delay_check_interval_s",
    "reconnect_max_delay_s",
    "send_timeout_s",
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
