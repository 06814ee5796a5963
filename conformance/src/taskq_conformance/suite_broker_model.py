"""The randomized model check of brokers: random steps, checked against the declared promises.

Each round kicks messages (with the ``delay`` and ``priority`` labels the broker declares),
lets consumers join and leave (each its own broker instance when the broker declares
``redelivery``, else a ``listen()`` of one instance), and settles what they hold: at once, by
``reject``, or slowly (longer than the lease). Consumers take at most a few messages at a time,
as a worker does. With ``redelivery`` and ``cross_process`` (and a ``module:attribute``
target), one consumer of a round may run in another process, hold all it receives and vanish:
killed, without a shutdown or a settlement. Every delivery is checked against the model as it
happens:

- nothing settled comes back; nothing reaches a second consumer while a live one holds it (nor,
  without ``acks``, twice at all); what a vanished consumer held comes back, within two leases
  (plus a margin) of the drain or of the vanishing, whichever is later;
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
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from taskq import AckableMessage, AsyncBroker, Capability
from taskq.toolkit import maybe_await
from taskq_conformance.instances import (
    FACTORY_CONTRACT,
    LEASE_MARGIN,
    LIFECYCLE_TIMEOUT,
    NewBroker,
    lease_of,
    payload,
    settle,
)
from taskq_conformance.modelcheck import Round, Violation, run_rounds
from taskq_conformance.process_consumer import ProcessConsumer
from taskq_conformance.settings import Settings
from taskq_conformance.suite_broker import EARLY, LISTEN_END_TIMEOUT, raw_message
from taskq_conformance.tags import TAGS
from taskq_conformance.targets import Target

#: Steps of a round, before it drains.
STEPS = 24
#: Consumers at once, at most.
MOST_CONSUMERS = 3
#: Step kinds and their weights ("vanish" only where a consumer can vanish).
KINDS = {"kick": 5, "join": 2, "leave": 2, "settle": 4, "pause": 2, "vanish": 2}
#: The share of joins, until one did, whose consumer runs in another process and may vanish.
IN_ANOTHER_PROCESS = 0.5
#: Delays (seconds) a kick draws from when the broker declares ``delay``.
DELAYS = (0, 0, 0, 0.2, 0.5, 1.0)
#: Seconds a drain waits for the last message past its due moment (plus two leases).
DRAIN_WINDOW = 10.0
#: The share of messages a drain rejects instead of acknowledging (with ``reject``).
DRAIN_REJECTS = 0.25
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
    holder: Holder | None = None

    def __str__(self) -> str:
        labels = f"delay {self.delay}, priority {self.priority}"
        return f"message {self.number} (step {self.step}, {labels})"


class Holder:
    """What the model knows of any consumer: its name, what it holds, whether it lives."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.held: list[tuple[Sent, Any]] = []
        self.live = True
        self.last_backlog_priority: dict[int, int] = {}


class Consumer(Holder):
    """A consumer of the round: pumps a ``listen()`` while it holds fewer than ``capacity``."""

    def __init__(
        self,
        model: BrokerModel,
        name: str,
        broker: AsyncBroker,
        capacity: int,
        instance: AbstractAsyncContextManager[AsyncBroker] | None,
    ) -> None:
        super().__init__(name)
        self.model, self.broker = model, broker
        self.capacity = capacity
        self.instance = instance
        self.slow: set[int] = set()
        self.room = asyncio.Event()
        self.room.set()
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


class Mortal(Holder):
    """The consumer of a round that runs in another process, holds all it receives and vanishes."""

    def __init__(self, model: BrokerModel, name: str, spec: str, capacity: int) -> None:
        super().__init__(name)
        prefix = TAGS.tag(f"model-{model.tag}-".encode())
        self.process = ProcessConsumer(spec, prefix, capacity, model.received_by(self))
        #: When it was killed (None while it lives), and at which step or stage.
        self.vanished_at: float | None = None
        self.vanished_when = ""


class BrokerModel:
    """One round against a broker: its steps, the model, and the checks.

    ``spec`` is the factory's ``module:attribute``, for the consumer in another process (None:
    no consumer vanishes).
    """

    def __init__(
        self,
        current: Round,
        hub: AsyncBroker,
        new_broker: NewBroker,
        settings: Settings,
        spec: str | None = None,
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
        cross_process = Capability.CROSS_PROCESS.value in declared
        self.spec = spec if self.redelivery and cross_process else None
        self.mortal: Mortal | None = None
        self.tag = uuid.uuid4().hex[:12]
        self.sent: dict[bytes, Sent] = {}
        self.consumers: list[Consumer] = []
        self.everyone: list[Consumer] = []
        self.joined = 0
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
                "vanish": self._vanish,
            }
            kinds = {k: w for k, w in KINDS.items() if self.spec or k != "vanish"}
            for self.step in range(1, STEPS + 1):
                kind = rand.choices(list(kinds), weights=list(kinds.values()))[0]
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
            body = TAGS.tag(f"model-{self.tag}-{len(self.sent) + 1}".encode())
            backlog = None if self._listening() else self.epoch + 1
            now = time.monotonic()
            sent = Sent(len(self.sent) + 1, self.step, delay, priority, now + delay, backlog)
            self.sent[body] = sent
            self.round.log(f"kick {sent}")
            await self.hub.kick(raw_message(body, **labels))

    async def _join(self, a: float, b: float, c: float) -> None:
        mortals = 1 if self.mortal is not None and self.mortal.live else 0
        if len(self.consumers) + mortals >= MOST_CONSUMERS:
            return
        if self.spec is not None and self.mortal is None and b < IN_ANOTHER_PROCESS:
            await self._add_mortal(self.spec, 1 + int(a * 3))
            return
        await self._add_consumer(1 + int(a * 3))

    def _listening(self) -> bool:
        return bool(self.consumers) or (self.mortal is not None and self.mortal.live)

    def _new_epoch_if_none_listens(self) -> None:
        if not self._listening():
            self.epoch += 1
            self.backlog_intact = True

    def _new_name(self) -> str:
        self.joined += 1
        return f"consumer {self.joined}"

    async def _add_mortal(self, spec: str, capacity: int) -> None:
        """A consumer joins in another process (the step waits for its broker's start)."""
        self._new_epoch_if_none_listens()
        name = self._new_name()
        self.mortal = mortal = Mortal(self, name, spec, capacity)
        if not await mortal.process.wait_started(LIFECYCLE_TIMEOUT):
            raise Violation(
                f"{name}, a broker the factory made in another process, did not start within "
                f"{LIFECYCLE_TIMEOUT:g} s (exit status: {mortal.process.exit_status()}; its "
                "errors are in the captured stderr)"
            )
        self.round.log(f"{name} joins in another process, holding the first {capacity} it takes")

    async def _add_consumer(self, capacity: int) -> None:
        self._new_epoch_if_none_listens()
        name = self._new_name()
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

    async def _vanish(self, a: float, b: float, c: float) -> None:
        if self.mortal is not None and self.mortal.live and self.mortal.held:
            self._kill_mortal(self.mortal, f"at step {self.step}")

    def _kill_mortal(self, mortal: Mortal, when: str) -> None:
        """Kill the consumer in another process: what it held must come back, to others."""
        mortal.process.kill()  # its last reports are handled before anything else
        mortal.live = False
        mortal.vanished_at, mortal.vanished_when = time.monotonic(), when
        self.backlog_intact = False  # what it held comes after what others took: no order
        held = ", ".join(str(sent.number) for sent, _ in mortal.held) or "nothing"
        self.round.log(f"{mortal.name} vanishes (killed), holding {held}")

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

    def _final_settlement(self) -> str:
        """How a drain settles a message: acknowledged, or now and then rejected (with ``reject``).

        Rejected messages are the ones a restart then checks for coming back.
        """
        if not self.acks:
            return "finish"
        if self.reject and self.round.random.random() < DRAIN_REJECTS:
            return "reject"
        return "ack"

    async def _pause(self, a: float, b: float, c: float) -> None:
        seconds = (0.05, 0.2, 0.5)[int(a * 3)]
        self.round.log(f"pause {seconds} s")
        await asyncio.sleep(seconds)

    async def _drain(self) -> None:
        started = time.monotonic()
        if self.mortal is not None and self.mortal.live:
            self._kill_mortal(self.mortal, "as the round drained")
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
                        await self._settle(consumer, sent, self._final_settlement())
            self._check()
            self._check_came_back(started)
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

    def _check_came_back(self, drain_started: float) -> None:
        """What the vanished consumer held came back within two leases (plus a margin)."""
        mortal = self.mortal
        if mortal is None or mortal.vanished_at is None or self.lease is None:
            return
        window = 2 * self.lease + LEASE_MARGIN
        if time.monotonic() < max(drain_started, mortal.vanished_at) + window:
            return
        if stuck := [str(sent) for sent, _ in mortal.held if sent.holder is mortal]:
            raise Violation(
                f"{len(stuck)} message(s) held by {mortal.name} when it vanished (killed "
                f"{mortal.vanished_when}: no shutdown, no acknowledgement) did not come back "
                f"within {window:g} s (twice the lease_s, plus a margin) while the others "
                f"listened with room to spare: {'; '.join(stuck)}"
            )

    def _whereabouts(self, sent: Sent) -> str:
        if not sent.deliveries:
            return f"{sent} never delivered"
        holder = sent.holder.name if sent.holder else "nobody"
        gone = "vanished" if sent.holder is self.mortal else "left"
        return f"{sent} delivered {sent.deliveries} time(s), last to {holder}, which {gone}"

    async def _clean_up(self) -> None:
        if self.mortal is not None:
            self.mortal.process.close()
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

    def received_by(self, mortal: Holder) -> Callable[[bytes], None]:
        """What the consumer in another process calls with each message it reports."""
        return lambda body: self.delivered(mortal, body)

    def delivered(self, consumer: Holder, item: Any) -> None:
        """Check a delivery against the model, then let ``consumer`` hold it."""
        sent = self.sent.get(payload(item))
        if sent is None:  # left by another round, check or run: settled, not modelled
            TAGS.record(payload(item))
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

    def _check_priority(self, consumer: Holder, sent: Sent, where: str) -> None:
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
        mortal = self.mortal
        status = None if mortal is None or not mortal.live else mortal.process.exit_status()
        if mortal is not None and status is not None:
            raise Violation(
                f"{mortal.name}, a broker the factory made in another process, exited with "
                f"status {status} while it listened (its errors are in the captured stderr)"
            )


async def test_random_rounds_against_the_model(
    taskq_new_broker: NewBroker, taskq_settings: Settings, taskq_broker_target: Target
) -> None:
    spec = taskq_broker_target.spec
    async with taskq_new_broker() as hub:

        def model(current: Round) -> Coroutine[Any, Any, None]:
            return BrokerModel(current, hub, taskq_new_broker, taskq_settings, spec).run()

        await run_rounds(taskq_settings, model)
