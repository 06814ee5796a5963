"""taskq_redis.connection: URL checks, redaction, the pool opened on use and closed."""

from __future__ import annotations

import pytest

from taskq_redis.connection import RedisConnection, check_url, redacted


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


async def test_the_pool_opens_on_use_and_closes(redis_url: str) -> None:
    connection = RedisConnection(redis_url, "Part", max_connections=3)
    assert not connection.is_open
    assert await connection.client.ping()
    assert connection.client.connection_pool.max_connections == 3
    await connection.close()
    assert not connection.is_open
    await connection.close()  # closing twice is harmless
