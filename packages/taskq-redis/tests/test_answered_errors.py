"""A Redis that is up and answers errors (out of memory, ACL, password): typed, logged once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from redis.exceptions import ResponseError

from taskq import BrokerMessage, SendTaskError
from taskq.testing import cancel_until_done, eventually
from taskq_redis import RedisStreamBroker, SendRefusedError, SendUnavailableError
from taskq_redis.reconnect import AnswerLog
from taskq_redis.testing import take


@pytest.fixture
def admin(own_redis_url: str) -> Any:
    """A client of the test's own server, to change its settings."""
    with redis.Redis.from_url(own_redis_url) as client:
        yield client


@pytest.fixture
async def own_broker(own_redis_url: str) -> AsyncIterator[RedisStreamBroker]:
    broker = RedisStreamBroker(own_redis_url, lease_s=0.3, send_timeout_s=0.2)
    broker.is_worker_process = True
    await broker.startup()
    yield broker
    await broker.shutdown()


def message(n: int) -> BrokerMessage:
    return BrokerMessage(f"t{n}", "demo", b"%d" % n, {})


async def started_worker(url: str, **options: Any) -> RedisStreamBroker:
    broker = RedisStreamBroker(url, **{"lease_s": 0.3, **options})
    broker.is_worker_process = True
    await broker.startup()
    return broker


def refused_group_creations(admin: Any) -> int:
    """How many ``XGROUP CREATE`` commands the server refused (out of memory, say)."""
    stats = admin.info("commandstats").get("cmdstat_xgroup|create", {})
    return int(stats.get("rejected_calls", 0))


def refuse_scripts(admin: Any) -> None:
    """Take ``EVALSHA`` from ACL user ``worker``: Redis answers its scripts ``NOPERM``."""
    admin.acl_setuser("worker", enabled=True, commands=["-evalsha"])


def allow_everything(admin: Any) -> None:
    admin.acl_setuser("worker", enabled=True, commands=["+@all"])


async def acl_worker(server_url: str, admin: Any) -> tuple[str, RedisStreamBroker]:
    """A started worker connected as ACL user ``worker`` (every command allowed), its URL."""
    admin.acl_setuser("worker", enabled=True, passwords=["+pw"], commands=["+@all"], keys=["*"])
    url = server_url.replace("redis://", "redis://worker:pw@")
    return url, await started_worker(url)


async def test_a_send_refused_for_lack_of_memory_says_so_and_what_to_do(
    own_broker: RedisStreamBroker, admin: Any
) -> None:
    admin.config_set("maxmemory", 1)  # the default policy, noeviction, refuses writes
    with pytest.raises(SendRefusedError, match=r"OOM .* raise maxmemory") as caught:
        await own_broker.kick(message(1))
    assert isinstance(caught.value, SendTaskError)
    assert own_broker.reconnector.server in str(caught.value)
    admin.config_set("maxmemory", 0)
    await own_broker.kick(message(2))  # accepted again at once
    (got,) = await take(own_broker, 1)
    assert got.data == b"2"
    await got.ack()


async def test_a_worker_started_while_redis_is_out_of_memory_reads_the_queue(
    own_redis_url: str, admin: Any
) -> None:
    first = await started_worker(own_redis_url)
    await first.create_groups()  # a worker ran before
    for n in range(3):
        await first.kick(message(n))
    admin.config_set("maxmemory", 1)  # refuses XGROUP CREATE, even of a group that exists
    added = await started_worker(own_redis_url)  # started to drain a full Redis
    try:
        got = await take(added, 3, timeout=5)  # raised OutOfMemoryError before
        for each in got:
            await each.ack()  # acknowledging frees memory: allowed
        assert admin.xlen(added.keys.streams[0]) == 0
    finally:
        admin.config_set("maxmemory", 0)
        await asyncio.gather(first.shutdown(), added.shutdown())


async def test_a_worker_waits_for_memory_to_create_a_missing_group(
    own_redis_url: str, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broker = await started_worker(own_redis_url, reconnect_max_delay_s=0.05)
    try:
        await broker.kick(message(1))  # sent before any worker made the group
        admin.config_set("maxmemory", 1)
        with caplog.at_level(logging.WARNING, logger="taskq.redis"):
            taking = asyncio.ensure_future(take(broker, 1, timeout=10))
            # several tries, each refused (10 streams per try)
            await eventually(lambda: refused_group_creations(admin) >= 30)
            assert "cannot create the consumer group" in caplog.text
            assert not taking.done()
            admin.config_set("maxmemory", 0)
            (got,) = await taking
        refusals = [r for r in caplog.records if "cannot create the consumer group" in r.message]
        assert len(refusals) == 1, "logged once, not at every try"
        assert "OOM" in refusals[0].message
        assert "accepts again: create the consumer group works" in caplog.text
        assert got.data == b"1"
        await got.ack()
    finally:
        admin.config_set("maxmemory", 0)
        await broker.shutdown()


async def test_a_dead_letter_refused_for_lack_of_memory_leaves_the_message_pending(
    own_redis_url: str, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broker = await started_worker(own_redis_url, max_deliveries=1, block_ms=50)
    await broker.create_groups()
    stream = broker.keys.streams[0]
    try:
        await broker.kick(message(1))
        # a worker read it once and died: its lease expired long ago
        ((_, ((entry_id, _),)),) = admin.xreadgroup("taskq", "gone-1", {stream: ">"})
        admin.xclaim(stream, "taskq", "gone-1", 0, [entry_id], idle=3_600_000, justid=True)
        admin.config_set("maxmemory", 1)  # the dead letter's XADD is refused
        with caplog.at_level(logging.WARNING, logger="taskq.redis"):
            looking = asyncio.ensure_future(take(broker, 1, timeout=10))
            await eventually(lambda: "cannot dead-letter" in caplog.text)
            # acknowledged and never dead-lettered before: lost
            assert admin.xpending(stream, "taskq")["pending"] == 1
            assert admin.xlen(broker.keys.dead_letters) == 0
            admin.config_set("maxmemory", 0)
            await eventually(lambda: admin.xlen(broker.keys.dead_letters) == 1)
        assert admin.xpending(stream, "taskq")["pending"] == 0
        (letter,) = await broker.dead_letters.list()
        assert letter.payload == b"1"
        assert letter.reason.startswith("delivered 1 times")
        await cancel_until_done(looking)
    finally:
        admin.config_set("maxmemory", 0)
        await broker.shutdown()


async def test_rejections_refused_for_lack_of_memory_are_logged_once_and_kept_pending(
    own_broker: RedisStreamBroker, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(3):
        await own_broker.kick(message(n))
    held = await take(own_broker, 3)
    admin.config_set("maxmemory", 1)
    with caplog.at_level(logging.WARNING, logger="taskq.redis"):
        for got in held:
            await got.reject("unknown task")  # raised OutOfMemoryError before
    refused = [r for r in caplog.records if r.getMessage().startswith("cannot dead-letter")]
    assert len(refused) == 1
    assert "OOM" in refused[0].getMessage()
    stream = own_broker.keys.streams[0]
    assert admin.xpending(stream, "taskq")["pending"] == 3, "kept for another delivery"
    admin.config_set("maxmemory", 0)
    again = await take(own_broker, 3)  # back once their lease expired
    for got in again:
        await got.reject("unknown task")
    assert admin.xlen(own_broker.keys.dead_letters) == 3
    assert admin.xpending(stream, "taskq")["pending"] == 0


async def test_a_password_redis_asks_for_is_not_called_an_outage(
    own_redis_url: str, admin: Any
) -> None:
    admin.config_set("requirepass", "secret")
    broker = RedisStreamBroker(own_redis_url, send_timeout_s=0.2)
    try:
        with pytest.raises(SendUnavailableError) as caught:
            await broker.kick(message(1))
    finally:
        await broker.shutdown()
    text = str(caught.value)
    assert "answered an error: NOAUTH" in text
    assert "give it in the URL" in text
    assert "did not answer" not in text


async def test_releases_refused_are_logged_once_and_the_messages_come_back(
    own_redis_url: str, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _, broker = await acl_worker(own_redis_url, admin)
    try:
        for n in range(5):
            await broker.kick(message(n))
        held = await take(broker, 5)
        refuse_scripts(admin)
        with caplog.at_level(logging.WARNING, logger="taskq.redis"):
            for got in held:
                await got.release()  # raised NOPERM before, a traceback per message
        # the heartbeat and the delayed-message mover may log their own refusal meanwhile
        refused = [r for r in caplog.records if r.getMessage().startswith("cannot release")]
        assert len(refused) == 1
        assert "NOPERM" in refused[0].getMessage()
        assert "ACL SETUSER" in refused[0].getMessage()
        allow_everything(admin)
        again = await take(broker, 5)  # taken over once their lease expired
        assert sorted(m.data for m in again) == [b"%d" % n for n in range(5)]
        for got in again:
            await got.ack()
    finally:
        await broker.shutdown()


async def test_an_ack_goes_through_when_redis_refuses_the_look_for_dead_letters(
    own_redis_url: str, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _, broker = await acl_worker(own_redis_url, admin)
    try:
        await broker.kick(message(1))
        (got,) = await take(broker, 1)
        (entry,) = admin.xpending_range(broker.keys.streams[0], "taskq", "-", "+", 10)
        # settled meanwhile (a reclaim dead-lettered it, say): the ack looks for a dead letter
        admin.xack(broker.keys.streams[0], "taskq", entry["message_id"])
        refuse_scripts(admin)
        with caplog.at_level(logging.WARNING, logger="taskq.redis"):
            await got.ack()  # raised NoPermissionError from the look, after the ack went out
        assert "cannot look for their dead letters" in caplog.text
        assert "NOPERM" in caplog.text
    finally:
        allow_everything(admin)
        await broker.shutdown()


async def test_a_worker_shuts_down_when_redis_refuses_its_hand_back(
    own_redis_url: str, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url, broker = await acl_worker(own_redis_url, admin)
    for n in range(3):
        await broker.kick(message(n))
    held = await take(broker, 3)
    refuse_scripts(admin)
    with caplog.at_level(logging.WARNING, logger="taskq.redis"):
        await broker.shutdown()  # raised NOPERM before: the worker stopped with a traceback
    refused = [r.getMessage() for r in caplog.records if "hand back" in r.getMessage()]
    assert len(refused) == 1
    assert refused[0].startswith("cannot hand back held messages")
    assert "NOPERM" in refused[0]
    del held
    allow_everything(admin)
    successor = await started_worker(url)
    try:
        again = await take(successor, 3)  # taken over once their lease expired
        assert sorted(m.data for m in again) == [b"0", b"1", b"2"]
        for got in again:
            await got.ack()
    finally:
        await successor.shutdown()


async def test_a_consumer_refused_its_leave_of_the_group_says_so(
    own_redis_url: str, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _, broker = await acl_worker(own_redis_url, admin)
    try:
        await broker.kick(message(1))
        (got,) = await take(broker, 1)  # its listen() ended: it leaves once this is settled
        refuse_scripts(admin)
        with caplog.at_level(logging.WARNING, logger="taskq.redis"):
            await got.ack()
            # its task ended with the error, unretrieved, before
            await eventually(lambda: "cannot leave the consumer group" in caplog.text)
        allow_everything(admin)
    finally:
        await broker.shutdown()


async def test_a_listen_ending_while_redis_refuses_its_hand_back_ends(
    own_redis_url: str, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _, broker = await acl_worker(own_redis_url, admin)
    try:
        for n in range(3):
            await broker.kick(message(n))
        messages = broker.listen()
        first = await messages.__anext__()  # held, unsettled: the other 2 go back at the end
        refuse_scripts(admin)
        with caplog.at_level(logging.WARNING, logger="taskq.redis"):
            await messages.aclose()  # raised NOPERM before
        assert "cannot hand back unstarted messages" in caplog.text
        allow_everything(admin)
        rest = await take(broker, 2)  # taken over once their lease expired
        assert sorted(m.data for m in rest) == [b"1", b"2"]
        await asyncio.gather(first.ack(), *(m.ack() for m in rest))  # type: ignore[misc]
    finally:
        await broker.shutdown()


def test_the_same_refusal_is_logged_once_and_its_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = AnswerLog("redis://h", "move due delayed messages")
    with caplog.at_level(logging.WARNING, logger="taskq.redis"):
        for _ in range(100):
            log.failed(ResponseError("OOM command not allowed"), "trying again")
        log.succeeded()
        log.succeeded()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("cannot move due delayed messages: Redis at redis://h answered")
    assert "raise maxmemory" in lines[0]
    assert lines[1] == "Redis at redis://h accepts again: move due delayed messages works"
