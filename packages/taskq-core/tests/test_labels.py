"""The `delay`, `priority` and `timeout` labels: refused at `kiq` out of bounds, parsed alike."""

from __future__ import annotations

import math
from typing import Any

import pytest

from taskq import InMemoryBroker, InvalidLabelError, SendTaskError
from taskq.labels import (
    MAX_DELAY_S,
    MAX_PRIORITY,
    MIN_PRIORITY,
    delay_seconds,
    priority_value,
    timeout_seconds,
)

BAD_LABELS = [
    ("delay", math.inf),
    ("delay", -math.inf),
    ("delay", math.nan),
    ("delay", "inf"),
    ("delay", "nan"),
    ("delay", 1e300),
    ("delay", MAX_DELAY_S + 1),
    ("delay", 10**400),
    ("delay", "soon"),
    ("delay", [1]),
    ("priority", math.inf),
    ("priority", -math.inf),
    ("priority", math.nan),
    ("priority", "-inf"),
    ("priority", 1.5),
    ("priority", "2.5"),
    ("priority", MAX_PRIORITY + 1),
    ("priority", MIN_PRIORITY - 1),
    ("priority", 1e300),
    ("priority", "high"),
    ("timeout", math.inf),
    ("timeout", math.nan),
    ("timeout", "forever"),
]


@pytest.fixture
async def broker() -> Any:
    broker = InMemoryBroker()
    await broker.startup()
    yield broker
    await broker.shutdown()


@pytest.mark.parametrize(("label", "value"), BAD_LABELS)
async def test_kiq_refuses_a_label_out_of_bounds(broker: Any, label: str, value: Any) -> None:
    @broker.task
    async def work() -> None:
        pass

    with pytest.raises(InvalidLabelError) as raised:
        await work.kicker().with_labels(**{label: value}).kiq()
    assert isinstance(raised.value, SendTaskError)
    assert raised.value.label == label
    assert label in str(raised.value)
    assert len(broker.queue) == 0


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"delay": "0.01"}, "ran"),
        ({"delay": -5}, "ran"),
        ({"delay": 0}, "ran"),
        ({"priority": "3"}, "ran"),
        ({"priority": 2.0}, "ran"),
        ({"priority": MIN_PRIORITY}, "ran"),
        ({"priority": MAX_PRIORITY}, "ran"),
        ({"timeout": "5"}, "ran"),
        ({"timeout": 0}, "ran"),
    ],
)
async def test_labels_within_bounds_are_sent_and_honoured(
    broker: Any, labels: dict[str, Any], expected: str
) -> None:
    @broker.task
    async def work() -> str:
        return "ran"

    task = await work.kicker().with_labels(**labels).kiq()
    assert (await task.wait_result(timeout=5)).return_value == expected


def test_delay_is_seconds_within_thirty_days() -> None:
    assert delay_seconds(None) == 0.0
    assert delay_seconds(-3) == 0.0
    assert delay_seconds("1.5") == 1.5
    assert delay_seconds(MAX_DELAY_S) == MAX_DELAY_S == 30 * 24 * 3600
    with pytest.raises(InvalidLabelError, match="at most 2592000"):
        delay_seconds(MAX_DELAY_S + 0.5)


def test_priority_is_an_integral_number() -> None:
    assert priority_value(None) == 0
    assert priority_value("7") == 7
    assert priority_value(" -2 ") == -2
    assert priority_value(4.0) == 4
    assert priority_value("1e3") == 1000
    assert priority_value(True) == 1
    with pytest.raises(InvalidLabelError, match="integral"):
        priority_value(2**63)


def test_timeout_of_zero_or_less_means_no_limit() -> None:
    assert timeout_seconds(None) is None
    assert timeout_seconds(0) is None
    assert timeout_seconds(-1) is None
    assert timeout_seconds("2.5") == 2.5


def test_the_error_says_what_the_label_takes() -> None:
    with pytest.raises(InvalidLabelError) as raised:
        delay_seconds(math.inf)
    assert str(raised.value) == (
        "the label 'delay' must be a finite number of seconds, at most 2592000 (30 days), got inf"
    )
