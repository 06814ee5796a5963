"""Opening event stores from URLs, with the retention in the query."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from taskq.event_stores import InMemoryEventStore, SQLiteEventStore, open_event_store, urls
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


def test_only_the_opener_of_the_url_scheme_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    # A module that does not exist: loading an opener pointing there would raise.
    missing = "taskq_tests_no_such_module:open_store"
    announced = [
        EntryPoint("other", missing, urls.ENTRY_POINT_GROUP),
        EntryPoint("fake", missing, urls.ENTRY_POINT_GROUP),
        EntryPoint("fake", "builtins:str", urls.ENTRY_POINT_GROUP),  # the last one listed wins
    ]
    monkeypatch.setattr(urls, "in_group", lambda group: announced)
    opened: object = open_event_store("fake://host/0")
    assert opened == "fake://host/0"  # str(url): that opener ran
    with pytest.raises(EventStoreError, match=r"'gopher' \(fake, memory, other, sqlite\)"):
        open_event_store("gopher://x")
