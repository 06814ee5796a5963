"""taskq_redis.testing: the server or a skip (a failure on CI), prefixes, deleting keys."""

from __future__ import annotations

import atexit
import os
from typing import Any

import pytest

from taskq_redis import testing

UNREACHABLE = "redis://127.0.0.1:1/0"


def test_without_a_server_tests_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(testing.URL_ENV, UNREACHABLE)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"no Redis server at {UNREACHABLE}"):
        testing.redis_url_or_skip()


def test_without_a_server_tests_fail_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(testing.URL_ENV, UNREACHABLE)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true requires Redis"):
        testing.redis_url_or_skip()


def test_with_a_server_its_url_is_given(redis_url: str) -> None:
    assert testing.redis_url_or_skip() == redis_url


def test_prefixes_are_unique() -> None:
    assert testing.unique_prefix() != testing.unique_prefix()
    assert testing.unique_prefix("run").startswith("taskq-run-")


def test_a_temporary_prefix_is_cleaned_up_in_batches(redis_url: str, raw_redis: Any) -> None:
    with testing.temporary_prefix(redis_url) as prefix:
        raw_redis.mset({f"{prefix}:{n}": n for n in range(testing.DELETE_BATCH + 5)})
        raw_redis.set(f"{prefix}-other", 1)  # another prefix that starts the same
    assert raw_redis.keys(f"{prefix}:*") == []
    assert raw_redis.delete(f"{prefix}-other") == 1


def test_deleting_on_an_unreachable_server_deletes_nothing() -> None:
    assert testing.delete_keys(UNREACHABLE, "taskq-test-x") == 0


def test_the_run_prefix_is_chosen_once_and_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[Any] = []
    monkeypatch.setattr(atexit, "register", lambda *a: registered.append(a))
    monkeypatch.delenv("TASKQ_TEST_PREFIX", raising=False)
    first = testing.run_prefix("TASKQ_TEST_PREFIX", UNREACHABLE)
    assert testing.run_prefix("TASKQ_TEST_PREFIX", UNREACHABLE) == first
    assert os.environ["TASKQ_TEST_PREFIX"] == first
    assert registered == [(testing.delete_keys, UNREACHABLE, first)]


def test_without_redis_server_a_throwaway_server_skips_but_fails_on_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no redis-server on PATH"):
        testing.redis_server_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true requires it"):
        testing.redis_server_or_skip()


def test_a_throwaway_server_answers_and_is_gone_afterwards() -> None:
    import redis

    with testing.throwaway_server("--maxmemory", "2mb") as url, redis.Redis.from_url(url) as c:
        assert c.config_get("maxmemory") == {"maxmemory": str(2 * 1024 * 1024)}
    with pytest.raises(redis.ConnectionError), redis.Redis.from_url(url) as client:
        client.ping()
