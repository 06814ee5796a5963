"""The in-memory broker and result backend refuse sizes and times that make no sense."""

from __future__ import annotations

import math
from typing import Any

import pytest

from taskq_inmemory import InMemoryBroker, InmemoryResultBackend


@pytest.mark.parametrize("value", [math.inf, math.nan, 0, -1, 1.5])
@pytest.mark.parametrize("name", ["sync_tasks_pool_size", "max_async_tasks"])
def test_the_broker_refuses_sizes_that_are_not_positive_integers(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be an integer of at least 1, got "):
        InMemoryBroker(**{name: value})


@pytest.mark.parametrize("value", [math.inf, math.nan, 0, -2, 1.5])
@pytest.mark.parametrize("make", [InMemoryBroker, InmemoryResultBackend])
def test_max_stored_results_is_a_positive_integer_or_minus_one(make: Any, value: Any) -> None:
    with pytest.raises(
        ValueError,
        match=r"^max_stored_results must be an integer of at least 1, or -1 \(no limit\), got ",
    ):
        make(max_stored_results=value)
    assert make(max_stored_results=-1) is not None


@pytest.mark.parametrize("value", [math.inf, math.nan, 0, -1])
def test_result_ttl_is_finite_positive_seconds_or_none(value: float) -> None:
    with pytest.raises(ValueError, match=r"^result_ttl must be a finite number of seconds"):
        InmemoryResultBackend(result_ttl=value)
    assert InmemoryResultBackend(result_ttl=None).result_ttl is None
