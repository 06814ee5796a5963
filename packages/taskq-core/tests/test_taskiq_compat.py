"""Behaviour that code written for taskiq relies on, checked against taskq."""

from __future__ import annotations

import copy
from collections.abc import MutableMapping
from typing import Any

import pytest

from taskq import TaskiqEvents, TaskiqState


async def test_async_with_starts_and_stops_the_broker(recording_broker):
    fired: list[str] = []

    @recording_broker.on_event(TaskiqEvents.CLIENT_STARTUP, TaskiqEvents.CLIENT_SHUTDOWN)
    def record(state: Any) -> None:
        fired.append("started" if len(fired) == 0 else "stopped")

    async with recording_broker as entered:
        assert entered is recording_broker
        assert fired == ["started"]
    assert fired == ["started", "stopped"]


async def test_async_with_stops_the_broker_when_the_body_raises(recording_broker):
    fired: list[str] = []
    recording_broker.add_event_handler(
        TaskiqEvents.CLIENT_SHUTDOWN, lambda state: fired.append("stopped")
    )
    with pytest.raises(RuntimeError, match="body failed"):
        async with recording_broker:
            raise RuntimeError("body failed")
    assert fired == ["stopped"]


def test_state_is_a_mutable_mapping_with_attribute_access():
    state = TaskiqState()
    state["a"] = 1
    state.b = 2
    state.update(c=3)
    assert isinstance(state, MutableMapping)
    assert state.get("a") == 1
    assert state.get("missing") is None
    assert state.get("missing", "d") == "d"
    assert state["b"] == 2
    assert state.c == 3
    assert state.get_value("a") == 1
    assert len(state) == 3
    assert list(state) == ["a", "b", "c"]
    assert dict(state) == {"a": 1, "b": 2, "c": 3}
    assert state == {"a": 1, "b": 2, "c": 3}
    assert state.pop("c") == 3
    assert state.setdefault("d", 4) == 4
    del state["d"]
    with pytest.raises(KeyError):
        state["missing"]
    with pytest.raises(KeyError):
        del state["missing"]
    with pytest.raises(AttributeError, match="'TaskiqState' object has no attribute 'missing'"):
        _ = state.missing
    with pytest.raises(AttributeError, match="'TaskiqState' object has no attribute 'missing'"):
        del state.missing
    assert copy.copy(state) == state


def test_state_behaves_as_taskiqs():
    taskiq = pytest.importorskip("taskiq")
    ours, theirs = TaskiqState(), taskiq.TaskiqState()
    for state in (ours, theirs):
        state["a"] = 1
        state.b = [2]
        state.update({"c": 3})
        del state["c"]
    assert dict(ours) == dict(theirs)
    assert ours == theirs
    assert ours.get("zz", 5) == theirs.get("zz", 5)
    for state in (ours, theirs):
        with pytest.raises(AttributeError) as error:
            _ = state.zz
        assert str(error.value) == "'TaskiqState' object has no attribute 'zz'"
