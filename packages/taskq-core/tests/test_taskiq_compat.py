"""Behaviour that code written for taskiq relies on, checked against taskq."""

from __future__ import annotations

from typing import Any

import pytest

from taskq import TaskiqEvents


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
