"""taskq_redis.connection: URL checks, redaction, the pool, serial connections and their timeout."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskq_redis import (
    RedisCancellationStore,
    RedisLimiter,
    RedisStreamBroker,
    RedisUniqueStore,
)
from taskq_redis.connection import (
    DEFAULT_REPLY_TIMEOUT_S,
    RedisConnection,
    SerialConnection,
    check_url,
    redacted,
)
from taskq_redis.event_store import RedisEventStore
from taskq_redis.testing import relayed
from taskq_redis.wire import CommandPrefix


def test_only_redis_urls_are_accepted() -> None:
    for url in ("redis://h:1/0", "rediss://h", "unix:///tmp/redis.sock"):
        check_url(url)
    with pytest.raises(ValueError, match="not a Redis URL"):
        check_url("http://127.0.0.1:6379")


def test_passwords_are_redacted() -> None:
    assert redacted("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redacted("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert redacted("redis://h:1/0") == "redis://h:1/0"


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        RedisConnection("redis://h", "Part", max_connections=1)
    with pytest.raises(ValueError, match="Part carries bytes"):
        RedisConnection("redis://h", "Part", decode_responses=True)


def test_an_option_redis_py_does_not_take_is_refused_when_the_part_is_made() -> None:
    # redis-py raised it from inside itself at the first connection: in a worker, at startup
    with pytest.raises(TypeError, match=r"Part was given an option .*'socket_timout'"):
        RedisConnection("redis://h", "Part", socket_timout=5)
    with pytest.raises(TypeError, match="ssl_cert_reqs"):  # TLS options need rediss://
        RedisConnection("unix:///tmp/redis.sock", "Part", ssl_cert_reqs="none")
    RedisConnection("rediss://h", "Part", ssl_cert_reqs="none", socket_timeout=1)
    RedisConnection("redis://h", "Part", timeout=3)  # the pool's own wait for a connection


@pytest.mark.parametrize(
    "part",
    [RedisStreamBroker, RedisLimiter, RedisUniqueStore, RedisCancellationStore, RedisEventStore],
)
def test_every_redis_part_names_a_misspelt_option(part: type) -> None:
    with pytest.raises(TypeError, match=rf"{part.__name__} was given .*'socket_timout'"):
        part("redis://127.0.0.1:6379/0", socket_timout=60)


@pytest.mark.parametrize(
    ("name", "ours"),
    [("xread_block", "block_ms"), ("idle_timeout", "lease_s"), ("result_ex_time", "result_ttl")],
)
def test_a_taskiq_redis_argument_is_named_with_taskqs_own(name: str, ours: str) -> None:
    # code migrated from taskiq-redis: each would have reached redis-py as a connection option
    expected = f"'{name}', an argument of taskiq-redis: here it is {ours}"
    with pytest.raises(TypeError, match=expected):
        RedisStreamBroker("redis://127.0.0.1:6379/0", **{name: 1000})


async def test_the_pools_wait_option_does_not_reach_a_serial_connection(
    redis_url: str, redis_prefix: str
) -> None:
    # ``timeout`` is the blocking pool's wait for a free connection; handed to the broker's
    # serial send connection too, every send failed with redis-py's TypeError
    broker = RedisStreamBroker(redis_url, key_prefix=redis_prefix, timeout=3)

    @broker.task
    async def one() -> int:
        return 1

    async with broker:
        await one.kiq()
        assert sum([await broker.connection.client.xlen(key) for key in broker.keys.streams]) == 1


async def test_the_pool_opens_on_use_and_closes(redis_url: str) -> None:
    connection = RedisConnection(redis_url, "Part", max_connections=3)
    assert not connection.is_open
    assert await connection.client.ping()
    assert connection.client.connection_pool.max_connections == 3
    await connection.close()
    assert not connection.is_open
    await connection.close()  # closing twice is harmless


async def test_a_serial_connection_drops_a_server_that_stops_answering(redis_url: str) -> None:
    async with relayed(redis_url) as relay:
        serial = SerialConnection(RedisConnection(relay.url, "Part", socket_timeout=1))
        assert await serial.call(lambda redis: redis.ping())
        connection = serial.client.connection
        assert connection is not None
        assert connection.socket_timeout is None  # no per-command timeout: one per call
        relay.hang()
        with pytest.raises(RedisTimeoutError, match="no reply from Redis within 1 s"):
            await serial.call(lambda redis: redis.ping())
        assert not connection.is_connected  # dropped: a late reply must not answer a later call
        relay.restore()
        assert await serial.call(lambda redis: redis.ping())
        assert relay.accepted == 2
        await serial.close()
        await serial.close()  # closing twice is harmless


async def test_a_serial_connection_waits_out_a_blocking_read(redis_url: str, redis_prefix: str):
    serial = SerialConnection(RedisConnection(redis_url, "Part", socket_timeout=1))
    stream = f"{redis_prefix}:stream"
    # BLOCK 1.5 s is longer than the reply timeout: wait_s covers it
    read = await serial.call(lambda redis: redis.xread({stream: "$"}, block=1500), wait_s=1.5)
    assert not read  # nothing came: no reply timeout either
    await serial.close()


async def test_a_serial_connection_is_cut_off_at_each_calls_own_deadline(redis_url: str) -> None:
    async with relayed(redis_url) as relay:
        serial = SerialConnection(RedisConnection(relay.url, "Part", socket_timeout=1))
        assert await serial.call(lambda redis: redis.ping(), wait_s=60)  # a far deadline
        relay.hang()
        # cut off after 1 s, not 61: the bound (far above 1 s) only catches a late cut
        call = serial.call(lambda redis: redis.ping())
        with pytest.raises(RedisTimeoutError, match="within 1 s"):
            await asyncio.wait_for(call, 30)
        relay.restore()
        assert await serial.call(lambda redis: redis.ping())
        await serial.close()


async def test_a_call_cancelled_by_its_caller_is_not_a_timeout(redis_url: str) -> None:
    async with relayed(redis_url) as relay:
        serial = SerialConnection(RedisConnection(relay.url, "Part", socket_timeout=1))
        relay.hang()
        call = asyncio.ensure_future(serial.call(lambda redis: redis.ping()))
        await asyncio.sleep(0.1)  # the call is in flight
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        with pytest.raises(RedisTimeoutError):  # the next call still has its deadline
            await serial.call(lambda redis: redis.ping())
        relay.restore()
        assert await serial.call(lambda redis: redis.ping())
        await serial.close()


async def test_a_serial_connection_sends_packed_commands_and_argument_lists(
    redis_url: str, redis_prefix: str
) -> None:
    serial = SerialConnection(RedisConnection(redis_url, "Part"))
    key, other = f"{redis_prefix}:k\u00e9", f"{redis_prefix}:list"
    set_key = CommandPrefix(("SET", key))
    assert await serial.execute(
        [set_key.complete(b"a\r\nb"), b"*2\r\n$3\r\nGET\r\n$1\r\nx\r\n"]
    ) == [
        b"OK",
        None,
    ]
    assert await serial.execute([("GET", key)]) == [b"a\r\nb"]
    await serial.execute([("RPUSH", other, 1)])
    # an error reply fails the call once every reply was read: the next call is in step
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await serial.execute(
            [CommandPrefix(("GET",)).complete(other.encode()), set_key.complete(b"c")]
        )
    assert await serial.execute([("GET", key)]) == [b"c"]
    assert await serial.execute([]) == []
    await serial.execute([("DEL", key, other)])
    await serial.close()


def test_a_command_prefix_takes_bytes_text_and_integers() -> None:
    prefix = CommandPrefix(("XADD", "s\u00e9", "MAXLEN", "~", 10, b"*"), encoding="latin-1")
    assert prefix.complete(b"m") == (
        b"*7\r\n$4\r\nXADD\r\n$2\r\ns\xe9\r\n$6\r\nMAXLEN\r\n$1\r\n~\r\n$2\r\n10\r\n"
        b"$1\r\n*\r\n$1\r\nm\r\n"
    )
    with pytest.raises(TypeError, match="bytes, str or int"):
        CommandPrefix(("SET", 1.5))


def test_the_reply_timeout_is_the_socket_timeout_or_redis_pys_default() -> None:
    def timeout_s(**options: float | None) -> float | None:
        return SerialConnection(RedisConnection("redis://h", "Part", **options)).timeout_s

    assert timeout_s() == DEFAULT_REPLY_TIMEOUT_S
    assert timeout_s(socket_timeout=2) == 2
    assert timeout_s(socket_timeout=None) is None
