"""`taskq.toolkit`: every declared name resolves to the one definition in core."""

from __future__ import annotations

import importlib

import pytest

import taskq.toolkit


@pytest.mark.parametrize("name", taskq.toolkit.__all__)
def test_each_name_is_the_definition_it_stands_for(name: str) -> None:
    defined_in = importlib.import_module(taskq.toolkit._DEFINED_IN[name])
    expected = defined_in if defined_in.__name__.endswith(f".{name}") else getattr(defined_in, name)

    assert getattr(taskq.toolkit, name) is expected


def test_it_declares_exactly_what_it_exports() -> None:
    assert sorted(taskq.toolkit.__all__) == sorted(taskq.toolkit._DEFINED_IN)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = taskq.toolkit.nothing  # type: ignore[attr-defined]


async def test_maybe_await_takes_values_and_awaitables() -> None:
    async def three() -> int:
        return 3

    assert await taskq.toolkit.maybe_await(3) == 3
    assert await taskq.toolkit.maybe_await(three()) == 3
