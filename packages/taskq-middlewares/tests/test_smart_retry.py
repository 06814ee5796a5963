"""SmartRetryMiddleware: backoff values and bounds, and how retries are delayed."""

from __future__ import annotations

import random
import statistics
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest

from taskq import (
    AsyncKicker,
    Capability,
    Context,
    ScheduledTask,
    ScheduleSource,
    TaskiqDepends,
    TaskiqMessage,
)
from taskq.task_events import MAX_TASK_ID_CHARS, stored_task_id
from taskq_inmemory import InMemoryBroker
from taskq_middlewares import RetryConfigurationError, SmartRetryMiddleware

WAIT = 10


def message(**labels: Any) -> TaskiqMessage:
    return TaskiqMessage(task_id="t", task_name="m:t", labels=labels, args=[], kwargs={})


def attached(middleware: SmartRetryMiddleware) -> SmartRetryMiddleware:
    InMemoryBroker().add_middlewares(middleware)
    return middleware


def test_exponential_backoff_doubles_from_the_base_delay_up_to_the_cap() -> None:
    retry = attached(
        SmartRetryMiddleware(default_delay=1, use_delay_exponent=True, max_delay_exponent=20)
    )
    waits = [retry.retry_delay(message(), failed_runs) for failed_runs in range(1, 8)]
    assert waits == [1, 2, 4, 8, 16, 20, 20]
    # the task's delay label is its base; a later retry reads the base kept in its labels
    assert retry.retry_delay(message(delay=0.5), 3) == 2
    assert retry.retry_delay(message(delay=3.0, _retry_delay=0.5), 3) == 2
    assert retry.retry_delay(message(), 10_000) == 20  # no overflow


@pytest.mark.parametrize("bad", ["nan", "inf", float("nan"), 1e400, "soon"])
def test_a_delay_label_that_is_not_finite_seconds_gives_the_default_delay(bad: Any) -> None:
    # NaN and infinity went into the retry's delay label, which the broker refused: the retry
    # was never sent
    retry = attached(SmartRetryMiddleware(default_delay=2.5, use_delay_exponent=True))
    assert retry.retry_delay(message(_retry_delay=bad), 2) == 5
    assert retry.retry_delay(message(delay=bad), 1) == 2.5


def test_without_exponent_the_wait_is_the_base_delay() -> None:
    retry = attached(SmartRetryMiddleware(default_delay=2.5))
    assert [retry.retry_delay(message(), n) for n in (1, 2, 5)] == [2.5, 2.5, 2.5]


def test_full_jitter_is_uniform_between_zero_and_the_backoff() -> None:
    retry = attached(
        SmartRetryMiddleware(
            default_delay=1, use_delay_exponent=True, use_jitter=True, max_delay_exponent=16
        )
    )
    random.seed(20261124)
    for failed_runs, backoff in [(1, 1), (2, 2), (3, 4), (5, 16), (9, 16)]:
        samples = [retry.retry_delay(message(), failed_runs) for _ in range(4000)]
        assert all(0 <= s <= backoff for s in samples)
        # uniform on [0, b]: mean b/2, standard deviation b/sqrt(12); both within 5 %
        assert statistics.fmean(samples) == pytest.approx(backoff / 2, rel=0.05)
        assert statistics.pstdev(samples) == pytest.approx(backoff / 12**0.5, rel=0.05)
        # and it really spreads: a quarter of the draws in each quarter of the range
        quarter = sum(1 for s in samples if s < backoff / 4) / len(samples)
        assert quarter == pytest.approx(0.25, abs=0.03)


async def test_on_a_delay_capable_broker_retries_carry_the_backoff_as_delay_label(
    running: Any,
) -> None:
    broker = InMemoryBroker().with_middlewares(
        SmartRetryMiddleware(default_delay=0.01, use_delay_exponent=True)
    )
    assert Capability.DELAY in broker.capabilities
    seen: list[tuple[Any, Any]] = []

    @broker.task(retry_on_error=True, max_retries=4)
    async def flaky(context: Context = TaskiqDepends()) -> str:
        labels = context.message.labels
        seen.append((labels.get("_retries"), labels.get("delay")))
        if len(seen) < 4:
            raise ConnectionError("down")
        return "up"

    async with running(broker):
        result = await (await flaky.kiq()).wait_result(timeout=WAIT)
    assert result.return_value == "up"
    assert seen == [(None, None), (1, 0.01), (2, 0.02), (3, 0.04)]


class RecordingSource(ScheduleSource):
    """A dynamic schedule source keeping what is added in a list, as a scheduler would read."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.DYNAMIC})

    def __init__(self) -> None:
        self.added: list[ScheduledTask] = []

    async def get_schedules(self) -> list[ScheduledTask]:
        return list(self.added)

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        self.added.append(schedule)


class NoDelayBroker(InMemoryBroker):
    capabilities = InMemoryBroker.capabilities - {Capability.DELAY}


async def fire(broker: InMemoryBroker, schedule: ScheduledTask) -> None:
    """Send a due schedule the way a scheduler does."""
    kicker: AsyncKicker[Any, Any] = AsyncKicker(schedule.task_name, broker, schedule.labels)
    if schedule.task_id is not None:
        kicker.with_task_id(schedule.task_id)
    await kicker.kiq(*schedule.args, **schedule.kwargs)


async def test_without_delay_support_retries_go_through_the_schedule_source(running: Any) -> None:
    source = RecordingSource()
    broker = NoDelayBroker().with_middlewares(
        SmartRetryMiddleware(default_delay=30, schedule_source=source)
    )
    runs: list[Any] = []

    @broker.task(retry_on_error=True)
    async def charge(amount: int, currency: str = "EUR", context: Context = TaskiqDepends()) -> str:
        runs.append(context.message.labels.get("_retries"))
        if len(runs) == 1:
            raise ConnectionError("bank unreachable")
        return f"{amount} {currency}"

    async with running(broker):
        before = datetime.now(timezone.utc)
        task = await charge.kiq(5, currency="USD")
        await broker.wait_all()
        assert not await task.is_ready()  # the failed run stored nothing: a retry is planned
        [schedule] = source.added
        assert schedule.task_id == task.task_id
        assert (schedule.args, schedule.kwargs) == ([5], {"currency": "USD"})
        assert schedule.labels["_retries"] == 1
        assert "delay" not in schedule.labels
        assert schedule.time is not None
        assert before + timedelta(seconds=29) < schedule.time < before + timedelta(seconds=32)
        await fire(broker, schedule)
        result = await task.wait_result(timeout=WAIT)
    assert result.return_value == "5 USD"
    assert runs == [None, 1]


async def test_startup_refuses_when_retries_cannot_be_delayed() -> None:
    with pytest.raises(RetryConfigurationError, match="schedule_source"):
        await NoDelayBroker().with_middlewares(SmartRetryMiddleware()).startup()

    class StaticSource(ScheduleSource):
        async def get_schedules(self) -> list[ScheduledTask]:
            return []

    with pytest.raises(RetryConfigurationError, match="dynamic"):
        await (
            NoDelayBroker()
            .with_middlewares(SmartRetryMiddleware(schedule_source=StaticSource()))
            .startup()
        )


def test_bad_arguments_are_refused_at_construction() -> None:
    with pytest.raises(TypeError):
        SmartRetryMiddleware(schedule_source="redis://")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        SmartRetryMiddleware(default_delay=-1)
    with pytest.raises(ValueError, match="NaN"):
        SmartRetryMiddleware(default_delay=float("nan"))
    with pytest.raises(ValueError, match="finite"):
        SmartRetryMiddleware(default_delay=float("inf"))
    with pytest.raises(ValueError, match="NaN"):
        SmartRetryMiddleware(max_delay_exponent=float("nan"))


async def test_a_retry_schedule_of_a_huge_task_id_has_a_bounded_id_of_its_own() -> None:
    # the schedule id held the whole task id: with a 5 MB id, a Redis schedule source kept a
    # 5 MB hash field (15.7 MB for the schedule, 21 MB once its fire was claimed) and the
    # scheduler sent it twice more in the retry's labels (schedule_id, idempotency_key)
    source = RecordingSource()
    retry = SmartRetryMiddleware(default_delay=30, schedule_source=source)
    NoDelayBroker().add_middlewares(retry)
    big, twin = "i" * 5_000_000, "i" * 4_999_999 + "j"
    for task_id in (big, twin, "t1"):
        for failed_runs in (1, 2):
            sent = TaskiqMessage(task_id=task_id, task_name="m:t", labels={}, args=[], kwargs={})
            await retry.send_again(sent, failed_runs)
    ids = [schedule.schedule_id for schedule in source.added]
    assert len(set(ids)) == 6  # one per task and retry
    assert ids[0] == f"retry-{stored_task_id(big)}-1"
    assert ids[4:] == ["retry-t1-1", "retry-t1-2"]  # a short id's schedule id is as it was
    assert max(len(one) for one in ids) < MAX_TASK_ID_CHARS + 16
    assert [s.task_id for s in source.added][::2] == [big, twin, "t1"]  # run as the same task


THIRTY_DAYS = timedelta(days=30)


@pytest.mark.parametrize(
    ("cap", "labels", "failed_runs"),
    [
        (float("inf"), {}, 2000),  # no cap: 2**1999 s overflowed timedelta (OverflowError)
        (1e300, {}, 40),  # a cap past datetime's range: "date value out of range"
        (60.0, {"_retry_delay": 1e300}, 1),  # a label from the message, past timedelta's range
        (60.0, {"delay": 2.5e11}, 1),  # 7,900 years: the retry was scheduled in year 9949
    ],
)
async def test_a_retry_is_never_scheduled_more_than_30_days_ahead(
    cap: float, labels: dict[str, Any], failed_runs: int
) -> None:
    source = RecordingSource()
    retry = SmartRetryMiddleware(
        use_delay_exponent=cap != 60.0, max_delay_exponent=cap, schedule_source=source
    )
    NoDelayBroker().add_middlewares(retry)
    before = datetime.now(timezone.utc)
    wait = await retry.send_again(message(**labels), failed_runs)
    [schedule] = source.added
    assert schedule.time is not None
    assert wait == THIRTY_DAYS.total_seconds()
    assert before + THIRTY_DAYS <= schedule.time <= datetime.now(timezone.utc) + THIRTY_DAYS


async def test_an_uncapped_backoff_keeps_retrying_through_a_broker_with_delay(
    running: Any,
) -> None:
    # the 23rd retry's delay (2**22 s, 48 days) was refused by the kicker (at most 30 days):
    # the retries stopped there, with an error logged, however many attempts were allowed
    retry = SmartRetryMiddleware(default_delay=1, use_delay_exponent=True, max_delay_exponent=1e9)
    broker = InMemoryBroker().with_middlewares(retry)

    @broker.task(task_name="m:t")
    async def never_run() -> None: ...

    async with running(broker):
        assert await retry.send_again(message(), 23) == THIRTY_DAYS.total_seconds()
        assert await retry.send_again(message(), 2000) == THIRTY_DAYS.total_seconds()


def test_a_default_delay_over_30_days_is_refused() -> None:
    with pytest.raises(ValueError, match="30 days"):
        SmartRetryMiddleware(default_delay=THIRTY_DAYS.total_seconds() + 1)
