"""Opening event stores from URLs, with the retention in the query."""

from __future__ import annotations

import pytest

from taskq.event_stores import InMemoryEventStore, SQLiteEventStore, open_event_store
from taskq.exceptions import EventStoreError
from taskq.task_events import Retention


def test_sqlite_urls_name_a_file_and_carry_the_retention() -> None:
    store = open_event_store("sqlite:///var/lib/events.db?max_events=10&max_age=60")
    assert isinstance(store, SQLiteEventStore)
    assert store.path == "/var/lib/events.db"
    assert store.retention == Retention(max_events=10, max_age=60)
    relative = open_event_store("sqlite://events.db")
    assert isinstance(relative, SQLiteEventStore)
    assert relative.path == "events.db"


def test_memory_url() -> None:
    assert isinstance(open_event_store("memory://"), InMemoryEventStore)


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite://x.db?max_events=many", "sqlite://x.db?max_events=0", "gopher://x"],
)
def test_bad_urls_raise_the_event_store_error(url: str) -> None:
    with pytest.raises(EventStoreError):
        open_event_store(url)
