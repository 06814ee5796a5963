"""Opening an event store from a URL: ``sqlite://PATH``, ``memory://``, ``redis://...``.

Core opens ``sqlite`` and ``memory``; an installed package adds schemes through the entry-point
group ``taskq.event_stores`` (name: the scheme; value: a callable taking the URL and returning
a store), as taskq-redis does for ``redis``, ``rediss`` and ``unix``. Every scheme reads the
retention from the query: ``?max_events=N&max_age=SECONDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from taskq._entry_points import in_group
from taskq.exceptions import EventStoreError
from taskq.task_events import Retention

if TYPE_CHECKING:
    from taskq.abc.event_store import AsyncEventStore
    from taskq.event_stores.sqlite import SQLiteEventStore

#: The entry-point group of the schemes other packages add.
ENTRY_POINT_GROUP = "taskq.event_stores"
#: The schemes of the Redis store, and the package that has it.
_REDIS_SCHEMES = ("redis", "rediss", "unix")


def open_event_store(url: str) -> AsyncEventStore:
    """The store ``url`` names, not started; raise `EventStoreError` for a bad or unknown URL."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from taskq.event_stores.memory import InMemoryEventStore  # imported when used

        return InMemoryEventStore(url_retention(url))
    if scheme == "sqlite":
        return open_sqlite(url)
    opener = _installed_opener(scheme)
    if opener is None:
        hint = "; pip install taskq-redis" if scheme in _REDIS_SCHEMES else ""
        installed = (point.name for point in in_group(ENTRY_POINT_GROUP))
        known = ", ".join(sorted({"memory", "sqlite", *installed}))
        raise EventStoreError(f"no event store for the URL scheme {scheme!r} ({known}){hint}")
    return opener(url)


def open_sqlite(url: str) -> SQLiteEventStore:
    """``sqlite://PATH``: the file PATH (``sqlite://events.db`` relative, ``sqlite:///var/x.db``)."""
    from taskq.event_stores.sqlite import SQLiteEventStore  # imported when used

    return SQLiteEventStore(sqlite_path(url), url_retention(url))


def sqlite_path(url: str) -> str:
    """The file a ``sqlite://PATH`` URL names; raise `EventStoreError` when it names none."""
    path = url.removeprefix("sqlite://").partition("?")[0]
    if not path:
        raise EventStoreError(f"the SQLite event store URL names no file: {url!r}")
    return path


def url_retention(url: str) -> Retention:
    """The `Retention` of ``url``'s query (``max_events``, ``max_age`` in seconds)."""
    query = dict(parse_qsl(urlsplit(url).query))
    default = Retention()
    try:
        return Retention(
            max_events=int(query.get("max_events", default.max_events)),
            max_age=float(query.get("max_age", default.max_age)),
        )
    except ValueError:
        raise EventStoreError(f"max_events and max_age must be numbers in {url!r}") from None


def _installed_opener(scheme: str) -> Callable[[str], AsyncEventStore] | None:
    """The opener installed packages announce for ``scheme`` (the last one listed), or None.

    Only that opener's module is imported, not those of the other schemes.
    """
    announced = [point for point in in_group(ENTRY_POINT_GROUP) if point.name == scheme]
    if not announced:
        return None
    opener: Callable[[str], AsyncEventStore] = announced[-1].load()
    return opener
