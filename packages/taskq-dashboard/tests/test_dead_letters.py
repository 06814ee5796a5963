"""The Dead letters page's API on a broker that keeps them (Redis): list, replay, purge."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from taskq.event_stores import InMemoryEventStore
from taskq.toolkit import send_task
from taskq_dashboard import create_app
from taskq_redis import RedisStreamBroker
from taskq_redis.testing import redis_prefix, redis_url, take

from .conftest import XSS_ARGS, client_of, csrf_of
from .conftest import make_dead_letters as dead

__all__ = ["redis_prefix", "redis_url"]  # fixtures: the Redis server (skip without) and keys


@pytest.fixture
async def brokers(
    redis_url: str, redis_prefix: str
) -> AsyncIterator[tuple[RedisStreamBroker, RedisStreamBroker]]:
    """A client broker the dashboard shows, and a worker broker that rejects what it takes."""
    client = RedisStreamBroker(redis_url, key_prefix=redis_prefix).with_event_store(
        InMemoryEventStore()
    )
    worker = RedisStreamBroker(redis_url, key_prefix=redis_prefix)
    worker.is_worker_process = True
    await client.startup()
    await worker.startup()
    yield client, worker
    await worker.shutdown()
    await client.shutdown()


async def test_dead_letters_show_reason_and_decoded_payload(
    brokers: tuple[RedisStreamBroker, RedisStreamBroker],
) -> None:
    client, worker = brokers
    [task_id] = await dead(client, worker, XSS_ARGS[0])
    async with client_of(create_app(client)) as http:
        data = (await http.get("/api/dead-letters")).json()
        assert data["available"] is True
        assert data["count"] == 1
        [letter] = data["dead_letters"]
        assert "rejected" in letter["reason"]
        assert letter["deliveries"] == 1
        assert letter["message"]["task_id"] == task_id
        assert letter["message"]["task_name"] == "app:ingest"
        assert letter["message"]["args"] == [XSS_ARGS[0]]
        features = (await http.get("/api/overview")).json()["features"]
        assert features["dead_letters"] is True
        assert features["dead_letter_actions"] is True


async def test_replay_one_and_purge_all_are_recorded_as_events(
    brokers: tuple[RedisStreamBroker, RedisStreamBroker],
) -> None:
    client, worker = brokers
    first, second, third = await dead(client, worker, "a", "b", "c")
    async with client_of(create_app(client)) as http:
        http.headers["x-csrf-token"] = await csrf_of(http)
        letters = (await http.get("/api/dead-letters")).json()["dead_letters"]
        replayed = await http.post("/api/dead-letters/replay", json={"ids": [letters[0]["id"]]})
        assert replayed.json() == {"replayed": 1}
        [again] = await take(worker, 1)
        assert client.formatter.loads(again.data).task_id == first
        await again.ack()  # type: ignore[misc]
        assert (await http.get("/api/dead-letters")).json()["count"] == 2
        purged = await http.post("/api/dead-letters/purge", json={"ids": None})
        assert purged.json() == {"purged": 2}
        assert (await http.get("/api/dead-letters")).json()["count"] == 0
        kinds = {
            task_id: [e["kind"] for e in (await http.get(f"/api/tasks/{task_id}")).json()["events"]]
            for task_id in (first, second, third)
        }
        assert kinds[first] == ["sent", "sent"]  # sent by the client, then replayed
        assert kinds[second] == kinds[third] == ["sent", "rejected"]
        detail = (await http.get(f"/api/tasks/{second}")).json()
        assert detail["events"][-1]["error_message"] == "dead letter purged from the dashboard"


async def test_bad_dead_letter_requests_are_refused(
    brokers: tuple[RedisStreamBroker, RedisStreamBroker],
) -> None:
    client, _ = brokers
    async with client_of(create_app(client)) as http:
        token = await csrf_of(http)
        for body in (b"[1]", b"{not json", b'{"ids": "all"}', b'{"ids": [1]}'):
            response = await http.post(
                "/api/dead-letters/replay", content=body, headers={"x-csrf-token": token}
            )
            assert response.status_code == 400, body


async def test_a_dead_letter_with_a_nan_argument_is_listed(
    brokers: tuple[RedisStreamBroker, RedisStreamBroker],
) -> None:
    client, worker = brokers
    await send_task(client, "app:ingest", {}, (float("nan"),), {"at": float("-inf")})
    for item in await take(worker, 1):
        await item.reject()  # type: ignore[misc]
    async with client_of(create_app(client)) as http:
        response = await http.get("/api/dead-letters")
        assert response.status_code == 200
        [letter] = response.json()["dead_letters"]
        assert letter["message"]["args"] == ["nan"]
        assert letter["message"]["kwargs"] == {"at": "-inf"}
