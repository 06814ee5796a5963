"""The queues of one `AmqpBroker` and how each is declared: work, dead letters, delay buckets.

- The work queue (``queue_name``): durable; its dead letters go to the dead-letter queue. A
  classic queue may have ``x-max-priority``; a quorum queue has ``x-delivery-limit``. A classic
  queue whose deliveries taskq counts (``max_deliveries``) dead-letters into itself instead:
  a redelivered message is rejected once, and RabbitMQ puts it back at the queue's tail with
  its count in the ``x-death`` header, in one step (see `counted_deliveries`).
- The dead-letter queue (``{queue_name}.dead-letters`` by default): durable, classic.
- Every classic queue among them has the storage version ``classic_queue_version``
  (``x-queue-version``; None: the server's default).
- One delay bucket per delay in use (``{queue_name}.delay.{ms}``): a durable classic queue whose
  messages expire after exactly ``ms`` milliseconds (``x-message-ttl``) into the work queue.
  All messages of a bucket have the same time to live, so they expire in order, on time.
  Delays are rounded to three significant digits, so that a few hundred buckets at most
  serve any mix of delays; an unused bucket deletes itself after ``BUCKET_IDLE_MS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from taskq.toolkit import check_count

QueueType = Literal["classic", "quorum"]
#: A classic queue's storage version (``x-queue-version``, RabbitMQ 3.10 and later).
ClassicQueueVersion = Literal[1, 2]

#: Milliseconds a delay bucket stays without being declared before RabbitMQ deletes it (on
#: top of its time to live): senders declare a bucket again at least every
#: `BUCKET_REDECLARE_S`, so a bucket holding messages is never deleted.
BUCKET_IDLE_MS = 15 * 60 * 1000
#: Seconds after which a sender declares a delay bucket again before using it.
BUCKET_REDECLARE_S = 60.0
#: Significant digits a delay keeps (1234 ms -> 1230 ms; 3,600,000 ms stays).
DELAY_DIGITS = 3
#: Header of the reason a dead letter was dead-lettered by taskq with.
REASON_HEADER = "x-taskq-reason"
#: Header of a dead letter's deliveries, as counted when it was dead-lettered.
DELIVERIES_HEADER = "x-taskq-deliveries"
#: The header RabbitMQ records each dead-lettering of a message in.
DEATHS_HEADER = "x-death"
#: Header of the time (ms since the epoch) taskq dead-lettered a message.
DEAD_AT_HEADER = "x-taskq-dead-at"


@dataclass(frozen=True)
class Queues:
    """The names and arguments of a broker's queues.

    Raises:
        ValueError: A setting out of its range, or priority asked of a quorum queue.
    """

    name: str
    queue_type: QueueType
    max_priority: int | None
    max_deliveries: int | None
    dead_letter_queue: str
    classic_queue_version: ClassicQueueVersion | None = None

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 200:
            raise ValueError(f"queue_name must be 1 to 200 characters, got {self.name!r}")
        if self.queue_type not in ("classic", "quorum"):
            raise ValueError(f"queue_type must be 'classic' or 'quorum', not {self.queue_type!r}")
        if self.max_priority is not None:
            if self.queue_type == "quorum":
                raise ValueError("quorum queues have no priorities: use a classic queue")
            check_count("max_priority", self.max_priority, maximum=255, alternative="or None")
        if self.max_deliveries is not None:
            check_count("max_deliveries", self.max_deliveries, alternative="or None")
        if self.classic_queue_version not in (None, 1, 2):
            raise ValueError(
                f"classic_queue_version must be 1, 2 or None, got {self.classic_queue_version!r}"
            )

    @property
    def counts_deliveries(self) -> bool:
        """Whether taskq counts deliveries itself (classic queues with ``max_deliveries``)."""
        return self.queue_type == "classic" and self.max_deliveries is not None

    def classic_arguments(self) -> dict[str, Any]:
        """The arguments every classic queue of the broker has: its storage version."""
        if self.classic_queue_version is None:
            return {}
        return {"x-queue-version": self.classic_queue_version}

    def dead_letter_arguments(self) -> dict[str, Any]:
        """The arguments of the dead-letter queue (a classic queue)."""
        return self.classic_arguments()

    def work_arguments(self) -> dict[str, Any]:
        """The arguments of the work queue."""
        arguments: dict[str, Any] = {
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": (
                self.name if self.counts_deliveries else self.dead_letter_queue
            ),
        }
        if self.queue_type == "classic":
            arguments.update(self.classic_arguments())
        if self.queue_type == "quorum":
            arguments["x-queue-type"] = "quorum"
            if self.max_deliveries is not None:
                # RabbitMQ counts returns: the first delivery is not one of them
                arguments["x-delivery-limit"] = self.max_deliveries - 1
        if self.max_priority is not None:
            arguments["x-max-priority"] = self.max_priority
        return arguments

    def bucket(self, delay_ms: int) -> str:
        """The name of the delay bucket of ``delay_ms`` (already rounded by `bucket_ms`)."""
        return f"{self.name}.delay.{delay_ms}"

    def bucket_arguments(self, delay_ms: int) -> dict[str, Any]:
        """The arguments of the delay bucket of ``delay_ms``."""
        return {
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.name,
            "x-expires": delay_ms + BUCKET_IDLE_MS,
            **self.classic_arguments(),
        }


def counted_deliveries(headers: dict[str, Any] | None, queue: str) -> int:
    """The deliveries taskq counted of a message of the work queue ``queue``.

    That is its first delivery and each redelivery counted since. A counted redelivery is a
    rejection by which RabbitMQ dead-lettered the message into its own queue, which it records
    in ``x-death`` under that queue with the reason ``rejected``.
    """
    deaths = (headers or {}).get(DEATHS_HEADER)
    counted = 1
    for death in deaths if isinstance(deaths, list) else ():
        if (
            isinstance(death, dict)
            and header_text(death.get("queue")) == queue
            and header_text(death.get("reason")) == "rejected"
        ):
            count = death.get("count")
            counted += count if isinstance(count, int) else 1
    return counted


def header_text(value: Any) -> str:
    """A header's value as text (RabbitMQ sends its own strings as bytes); None as ''."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)


def bucket_ms(delay_s: float) -> int:
    """The delay bucket of a delay of ``delay_s`` seconds: milliseconds, 3 significant digits."""
    ms = max(1, round(delay_s * 1000))
    excess = len(str(ms)) - DELAY_DIGITS
    if excess <= 0:
        return ms
    unit = 10**excess
    return int(round(ms / unit) * unit)
