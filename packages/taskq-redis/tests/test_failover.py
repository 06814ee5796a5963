"""A failover: the server turns into a read-only replica, then a primary again or another one.

Kicks wait it out within ``send_timeout_s`` and the connections are made anew, so that an
address that moves to the new primary (a proxy, a DNS name) reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from taskq import BrokerMessage
from taskq.testing import eventually
from taskq_redis import RedisStreamBroker, SendRefusedError
from taskq_redis.testing import relayed, throwaway_server

DEADLINE_S = 30.0


class Pair:
    """Two throwaway servers: ``a`` the primary, ``b`` its replica in sync."""

    def __init__(self, url_a: str, url_b: str) -> None:
        self.url_a, self.url_b = url_a, url_b
        self.a = redis.Redis.from_url(url_a)
        self.b = redis.Redis.from_url(url_b)
        self.port_a = self.a.connection_pool.connection_kwargs["port"]
        self.port_b = self.b.connection_pool.connection_kwargs["port"]

    def in_sync(self) -> bool:
        a, b = self.a.info("replication"), self.b.info("replication")
        return bool(
            b.get("master_link_status") == "up"
            and a["master_repl_offset"] == b["master_repl_offset"]
        )

    def turn_a_into_replica(self) -> None:
        """Promote ``b``, make ``a`` its replica (``a`` answers writes ``READONLY``)."""
        self.b.execute_command("REPLICAOF", "NO", "ONE")
        self.a.execute_command("REPLICAOF", "127.0.0.1", str(self.port_b))

    def make_a_primary_again(self) -> None:
        self.a.execute_command("REPLICAOF", "NO", "ONE")

    def connections_received_by_a(self) -> int:
        return int(self.a.info("stats")["total_connections_received"])


@pytest.fixture
def pair() -> Iterator[Pair]:
    with throwaway_server() as url_a, throwaway_server() as url_b:
        pair = Pair(url_a, url_b)
        pair.b.execute_command("REPLICAOF", "127.0.0.1", str(pair.port_a))
        try:
            yield pair
        finally:
            pair.a.close()
            pair.b.close()


async def wait_in_sync(pair: Pair) -> None:
    await eventually(pair.in_sync, DEADLINE_S)


@contextlib.asynccontextmanager
async def started(url: str, **options: Any) -> AsyncIterator[RedisStreamBroker]:
    broker = RedisStreamBroker(url, **options)
    broker.is_worker_process = True
    await broker.startup()
    try:
        yield broker
    finally:
        await broker.shutdown()


def message(n: int) -> BrokerMessage:
    return BrokerMessage(f"t{n}", "demo", b"%d" % n, {})


def refused_once(caplog: pytest.LogCaptureFixture) -> bool:
    return any("READONLY" in record.getMessage() for record in caplog.records)


async def consume(broker: RedisStreamBroker, seen: list[bytes]) -> None:
    async for received in broker.listen():
        seen.append(received.data)
        await received.ack()


async def test_a_kiq_during_a_read_only_window_waits_and_is_sent_once(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "taskq.redis")
    async with started(pair.url_a, send_timeout_s=DEADLINE_S) as broker:
        await broker.create_groups()
        await wait_in_sync(pair)
        pair.turn_a_into_replica()
        kick = asyncio.ensure_future(broker.kick(message(1)))
        await eventually(lambda: refused_once(caplog) or kick.done(), DEADLINE_S)
        assert not kick.done(), kick.exception()
        pair.make_a_primary_again()
        await asyncio.wait_for(kick, DEADLINE_S)
        assert pair.a.xlen(broker.keys.streams[0]) == 1
        seen: list[bytes] = []
        consumer = asyncio.ensure_future(consume(broker, seen))
        await eventually(lambda: bool(seen), DEADLINE_S)
        consumer.cancel()
        assert seen == [b"1"]


async def test_a_kiq_read_only_past_its_budget_fails_naming_it_after_reconnecting(
    pair: Pair,
) -> None:
    async with started(pair.url_a, send_timeout_s=0.5) as broker:
        await broker.kick(message(0))  # the kick connection is open
        await wait_in_sync(pair)
        before = pair.connections_received_by_a()
        pair.turn_a_into_replica()
        with pytest.raises(SendRefusedError, match=r"READONLY .*read only replica"):
            await broker.kick(message(1))
        # each retry connected anew, so that a moved address would reach the new primary
        assert pair.connections_received_by_a() - before >= 2
        pair.make_a_primary_again()


async def test_a_worker_loses_nothing_while_its_server_is_read_only_a_while(pair: Pair) -> None:
    async with started(pair.url_a, send_timeout_s=DEADLINE_S) as broker:
        seen: list[bytes] = []
        consumer = asyncio.ensure_future(consume(broker, seen))
        for n in range(10):
            await broker.kick(message(n))
        await eventually(lambda: len(seen) == 10, DEADLINE_S)
        await eventually(lambda: pair.a.xlen(broker.keys.streams[0]) == 0, DEADLINE_S)  # all acked
        await wait_in_sync(pair)
        pair.turn_a_into_replica()
        kicks = asyncio.gather(*(broker.kick(message(n)) for n in range(10, 20)))
        await asyncio.sleep(0)
        pair.make_a_primary_again()
        await asyncio.wait_for(kicks, DEADLINE_S)
        await eventually(lambda: len(seen) == 20, DEADLINE_S)
        consumer.cancel()
        assert sorted(seen) == sorted(b"%d" % n for n in range(20))


async def test_a_failover_behind_one_address_reaches_the_new_primary(pair: Pair) -> None:
    async with (
        relayed(pair.url_a) as relay,
        started(relay.url, send_timeout_s=DEADLINE_S) as broker,
    ):
        seen: list[bytes] = []
        consumer = asyncio.ensure_future(consume(broker, seen))
        for n in range(10):
            await broker.kick(message(n))
        await eventually(lambda: len(seen) == 10, DEADLINE_S)
        await eventually(lambda: pair.a.xlen(broker.keys.streams[0]) == 0, DEADLINE_S)  # all acked
        await wait_in_sync(pair)
        relay.port = pair.port_b  # the address now leads to b, promoted
        pair.turn_a_into_replica()
        for n in range(10, 20):
            await broker.kick(message(n))
        await eventually(lambda: len(seen) == 20, DEADLINE_S)
        # acknowledged on b (acknowledgements go out in batches: the last one may trail)
        await eventually(lambda: pair.b.xlen(broker.keys.streams[0]) == 0, DEADLINE_S)
        consumer.cancel()
        assert sorted(seen) == sorted(b"%d" % n for n in range(20))
        # a pooled connection busy when a turned may stay open to it until its next use
        # (which a answers READONLY, dropping it): not asserted here
