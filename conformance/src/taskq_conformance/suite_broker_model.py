"""The randomized model check of brokers: random steps, checked against the declared promises.

Each round kicks messages (with the ``delay`` and ``priority`` labels the broker declares),
lets consumers join and leave (each its own broker instance when the broker declares
``redelivery``, else a ``listen()`` of one instance), and settles what they hold: at once, by
``reject``, or slowly (longer than the lease). Consumers take at most a few messages at a time,
as a worker does. Every delivery is checked against the model as it happens:

- nothing settled comes back; nothing reaches a second consumer while a live one holds it (nor,
  without ``acks``, twice at all);
- nothing delayed comes before its delay ended;
- with ``priority``, a consumer receives the messages that waited, ready, for a consumer
  highest first;
- at the end of the round, nothing is lost: every message is delivered (and, with ``acks``,
  settled), those held by consumers that left included (with ``redelivery``); then, with
  ``redelivery``, every consumer leaves and a new one joins, and nothing settled comes back.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from taskq import AckableMessage, AsyncBroker, Capability
from taskq.toolkit import maybe_await
from taskq_conformance.instances import (
    FACTORY_CONTRACT,
    LEASE_MARGIN,
    NewBroker,
    lease_of,
    payload,
    settle,
)
from taskq_conformance.modelcheck import Round, Violation, run_rounds
from taskq_conformance.settings import Settings
from taskq_conformance.suite_broker import LISTEN_END_TIMEOUT, raw_message

#: Steps of a round, before it drains.
STEPS = 24
#: Consumers at once, at most.
MOST_CONSUMERS = 3
#: Step kinds and their weights.
KINDS = {"kick": 5, "join": 2, "leave": 2, "settle": 4, "pause": 2}
#: Delays (seconds) a kick draws from when the broker declares ``delay``.
DELAYS = (0, 0, 0, 0.2, 0.5, 1.0)
#: Seconds a delayed message may come before its due moment (clocks of other machines).
EARLY = 0.05
#: Seconds a drain waits for the last message past its due moment (plus two leases).
DRAIN_WINDOW = 10.0
#: Seconds a new consumer listens after a restart, for settled messages coming back.
RESTART_QUIET = 1.5


@dataclass(eq=False)
class Sent:
    """A message of the round as the model knows it."""

    number: int
    step: int
    delay: float
    priority: int
    due: float
    #: The epoch of consumers it waited for, when kicked while there was none.
    backlog: int | None
    deliveries: int = 0
    settled: str = ""
    holder: Consumer | None = None

    def __str__(self) -> str:
        labels = f"delay {self.delay}, priority {self.priority}"
        return f"message {self.number} (step {self.step}, {labels})"


class Consumer:
    """A consumer of the round: pumps a ``listen()`` while it holds fewer than ``capacity``."""

    def __init__(
        self,
        model: BrokerModel,
        name: str,
        broker: AsyncBroker,
        capacity: int,
        instance: AbstractAsyncContextManager[AsyncBroker] | None,
    ) -> None:
        self.model, self.name, self.broker = model, name, broker
        self.capacity = capacity
        self.instance = instance
        self.held: list[tuple[Sent, Any]] = []
        self.slow: set[int] = set()
        self.live = True
        self.room = asyncio.Event()
        self.room.set()
        self.last_backlog_priority: dict[int, int] = {}
        self.pump = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        async for item in self.broker.listen():
            self.model.delivered(self, item)
            while self.live and len(self.held) >= self.capacity:
                self.room.clear()
                await self.room.wait()

    def release(self, sent: Sent) -> Any:
        """Stop holding ``sent``; return its item."""
        for n, (held, item) in enumerate(self.held):
            if held is sent:
                del self.held[n]
                self.slow.discard(id(sent))
                self.room.set()
                return item
        raise LookupError(sent)

    async def stop(self) -> None:
        """Stop listening, and shut down its own broker instance if it has one.

        Raises `Violation` when ``listen()`` goes on regardless (its cancellation swallowed).
        """
        self.live = False
        self.room.set()
        self.pump.cancel()
        if self.instance is not None:
            instance, self.instance = self.instance, None
            await instance.__aexit__(None, None, None)
        await asyncio.wait((self.pump,), timeout=LISTEN_END_TIMEOUT)
        if not self.pump.done():
            raise Violation(
                f"listen() of {self.name} went on for {LISTEN_END_TIMEOUT} s after its task was "
                "cancelled (and its broker shut down, if it has one of its own): a "
                "CancelledError was swallowed on the way"
            )


class BrokerModel:
    """One round against a broker: its steps, the model, and the checks."""

    def __init__(
        self,
        current: Round,
        hub: AsyncBroker,
        new_broker: NewBroker,
        settings: Settings,
    ) -> None:
        self.round, self.hub, self.new_broker = current, hub, new_broker
        self.tolerance = settings.tolerance
        declared = {str(getattr(c, "value", c)) for c in hub.capabilities}
        self.acks = Capability.ACKS.value in declared
        self.reject = Capability.REJECT.value in declared
        self.redelivery = Capability.REDELIVERY.value in declared
        self.delay = Capability.DELAY.value in declared
        self.priority = Capability.PRIORITY.value in declared
        self.lease = lease_of(hub) if self.redelivery else None
        self.tag = uuid.uuid4().hex[:12]
        self.sent: dict[bytes, Sent] = {}
        self.consumers: list[Consumer] = []
        self.everyone: list[Consumer] = []
        self.violations: list[str] = []
        self.background: set[asyncio.Task[Any]] = set()
        self.epoch = 0
        self.backlog_intact = False
        self.step = 0

    # -- the round -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Draw and run the steps, then drain and check that nothing was lost."""
        try:
            rand = self.round.random
            steps = {
                "kick": self._kick,
                "join": self._join,
                "leave": self._leave,
                "settle": self._settle_one,
                "pause": self._pause,
            }
            for self.step in range(1, STEPS + 1):
                kind = rand.choices(list(KINDS), weights=list(KINDS.values()))[0]
                draws = (rand.random(), rand.random(), rand.random())
                await steps[kind](*draws)
                self._check()
            await self._drain()
        finally:
            await self._clean_up()

    async def _kick(self, a: float, b: float, c: float) -> None:
        rand = self.round.random
        for _ in range(1 + int(a * 4)):
            delay = rand.choice(DELAYS) if self.delay else 0
            priority = rand.randrange(10) if self.priority else 0
            labels: dict[str, Any] = {"delay": delay} if delay else {}
            if self.priority:
                labels["priority"] = priority
            body = f"model-{self.tag}-{len(self.sent) + 1}".encode()
            backlog = None if self.consumers else self.epoch + 1
            now = time.monotonic()
            sent = Sent(len(self.sent) + 1, self.step, delay, priority, now + delay, backlog)
            self.sent[body] = sent
            self.round.log(f"kick {sent}")
            await self.hub.kick(raw_message(body, **labels))

    async def _join(self, a: float, b: float, c: float) -> None:
        if len(self.consumers) >= MOST_CONSUMERS:
            return
        await self._add_consumer(1 + int(a * 3))

    async def _add_consumer(self, capacity: int) -> None:
        if not self.consumers:
            self.epoch += 1
            self.backlog_intact = True
        name = f"consumer {len(self.everyone) + 1}"
        instance = None
        broker = self.hub
        if self.redelivery:
            instance = self.new_broker()
            broker = await instance.__aenter__()
        consumer = Consumer(self, name, broker, capacity, instance)
        self.consumers.append(consumer)
        self.everyone.append(consumer)
        self.round.log(f"{name} joins, taking {capacity} at a time")
        await asyncio.sleep(0)

    async def _leave(self, a: float, b: float, c: float) -> None:
        if not self.consumers:
            return
        consumer = self.consumers.pop(int(a * len(self.consumers)))
        held = ", ".join(str(sent.number) for sent, _ in consumer.held) or "nothing"
        if self.redelivery:  # what it hands back comes after what others took: no order
            self.backlog_intact = False
        else:  # it settles what it holds first: nothing would bring it back
            for sent, _ in list(consumer.held):
                await self._settle(consumer, sent, "ack" if self.acks else "finish")
        self.round.log(f"{consumer.name} leaves, holding {held}")
        await consumer.stop()
        consumer.held.clear()

    async def _settle_one(self, a: float, b: float, c: float) -> None:
        holders = [c for c in self.consumers if len(c.held) > len(c.slow)]
        if not holders:
            return
        consumer = holders[int(a * len(holders))]
        ready = [sent for sent, _ in consumer.held if id(sent) not in consumer.slow]
        sent = ready[int(b * len(ready))]
        if not self.acks:
            how = "finish"
        else:
            ways = ["ack", "ack", "slow", *(["reject"] if self.reject else [])]
            how = ways[int(c * len(ways))]
        if how == "slow":
            consumer.slow.add(id(sent))
            hold = 1.5 * self.lease if self.lease else 0.5
            self.round.log(f"{consumer.name} works on message {sent.number} for {hold:g} s")
            self._spawn(self._settle_later(consumer, sent, hold))
            return
        await self._settle(consumer, sent, how)

    async def _settle_later(self, consumer: Consumer, sent: Sent, hold: float) -> None:
        await asyncio.sleep(hold)
        if consumer.live and any(held is sent for held, _ in consumer.held):
            await self._settle(consumer, sent, "ack")

    async def _settle(self, consumer: Consumer, sent: Sent, how: str) -> None:
        item = consumer.release(sent)
        past = {"ack": "acknowledged", "reject": "rejected", "finish": "processed"}[how]
        sent.settled = f"{past} by {consumer.name} at step {self.step}"
        sent.holder = None
        self.round.log(f"{consumer.name} {how}s message {sent.number}")
        if how == "reject" and isinstance(item, AckableMessage) and item.reject is not None:
            await maybe_await(item.reject())
        elif how == "ack":
            await settle(item)

    async def _pause(self, a: float, b: float, c: float) -> None:
        seconds = (0.05, 0.2, 0.5)[int(a * 3)]
        self.round.log(f"pause {seconds} s")
        await asyncio.sleep(seconds)

    async def _drain(self) -> None:
        if not self.consumers:
            await self._add_consumer(MOST_CONSUMERS)
        for consumer in self.consumers:
            consumer.capacity = 10**9
            consumer.room.set()
        self.round.log("drain: every consumer settles all it receives")
        last_due = max((sent.due for sent in self.sent.values()), default=0.0)
        window = DRAIN_WINDOW + (2 * self.lease + LEASE_MARGIN if self.lease else 0)
        deadline = max(time.monotonic(), last_due) + window
        while missing := [sent for sent in self.sent.values() if not sent.settled]:
            for consumer in self.consumers:
                for sent, _ in list(consumer.held):
                    if id(sent) not in consumer.slow:
                        await self._settle(consumer, sent, "ack" if self.acks else "finish")
            self._check()
            if time.monotonic() > deadline:
                lost = "; ".join(self._whereabouts(sent) for sent in missing)
                hint = ""
                if self.redelivery and not any(sent.deliveries for sent in self.sent.values()):
                    hint = f" (each consumer is a broker the factory made: {FACTORY_CONTRACT})"
                raise Violation(
                    f"{len(missing)} message(s) lost, waited {window:g} s: {lost}{hint}"
                )
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # anything settled that comes back now is caught
        self._check()
        if self.redelivery:
            await self._restart()

    async def _restart(self) -> None:
        """Every consumer leaves and a new one joins: nothing settled may come back to it."""
        self.round.log("restart: every consumer leaves, then a new one joins")
        while self.consumers:
            await self.consumers.pop().stop()
        await self._add_consumer(MOST_CONSUMERS)
        await asyncio.sleep(RESTART_QUIET)
        self._check()

    def _whereabouts(self, sent: Sent) -> str:
        if not sent.deliveries:
            return f"{sent} never delivered"
        holder = sent.holder.name if sent.holder else "nobody"
        return f"{sent} delivered {sent.deliveries} time(s), last to {holder}, which left"

    async def _clean_up(self) -> None:
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        for consumer in self.everyone:
            if consumer.live or consumer.instance is not None:
                await consumer.stop()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # -- the checks ----------------------------------------------------------------------------

    def delivered(self, consumer: Consumer, item: Any) -> None:
        """Check a delivery against the model, then let ``consumer`` hold it."""
        sent = self.sent.get(payload(item))
        if sent is None:  # left by another check: settled, not modelled
            self._spawn(settle(item))
            return
        now = time.monotonic()
        where = f"{sent} was delivered to {consumer.name}"
        if sent.settled:
            self._violate(f"{where} after it was {sent.settled}")
        elif sent.holder is not None and sent.holder.live:
            self._violate(f"{where} while {sent.holder.name}, alive, held it")
        elif sent.deliveries and not self.acks:
            self._violate(f"{where} a second time")
        if now < sent.due - EARLY:
            self._violate(f"{where} {sent.due - now:.2f} s before its delay ended")
        self._check_priority(consumer, sent, where)
        sent.deliveries += 1
        sent.holder = consumer
        consumer.held.append((sent, item))
        self.round.log(f"{consumer.name} receives message {sent.number}")

    def _check_priority(self, consumer: Consumer, sent: Sent, where: str) -> None:
        """A consumer takes what waited for it (ready, undelayed) highest priority first."""
        if not self.priority or not self.backlog_intact or sent.deliveries or sent.delay:
            return
        if sent.backlog != self.epoch:
            return
        last = consumer.last_backlog_priority.get(self.epoch)
        if last is not None and sent.priority > last:
            self._violate(
                f"{where} after a message of priority {last}, though both waited, ready, for a "
                "consumer: priorities were not respected among the ready messages"
            )
        consumer.last_backlog_priority[self.epoch] = sent.priority

    def _violate(self, why: str) -> None:
        self.round.log(f"VIOLATION: {why}")
        self.violations.append(why)

    def _check(self) -> None:
        if self.violations:
            raise Violation(self.violations[0])
        for consumer in self.consumers:
            if consumer.pump.done():
                error = consumer.pump.exception()
                raise Violation(
                    f"listen() of {consumer.name} ended while its broker runs"
                    + (f": {type(error).__name__}: {error}" if error else "")
                )


async def test_random_rounds_against_the_model(
    taskq_new_broker: NewBroker, taskq_settings: Settings
) -> None:
    async with taskq_new_broker() as hub:

        def model(current: Round) -> Coroutine[Any, Any, None]:
            return BrokerModel(current, hub, taskq_new_broker, taskq_settings).run()

        await run_rounds(taskq_settings, model)
