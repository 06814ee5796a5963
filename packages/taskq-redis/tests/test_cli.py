"""``taskq dlq``: list, show, replay and purge dead letters from the command line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskq import BrokerMessage, TaskiqMessage
from taskq.cli.dlq import main
from taskq_redis import RedisStreamBroker

HERE = Path(__file__).resolve().parent


def dlq(
    tmp_path: Path, redis_url: str, prefix: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REDIS_APP_URL": redis_url,
        "REDIS_APP_PREFIX": prefix,
        "REDIS_APP_OUT": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "taskq", "dlq", *args],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def dead_letters(broker: RedisStreamBroker, count: int) -> list[str]:
    """Send ``count`` record tasks and reject them all; return the dead letters' ids."""
    for n in range(count):
        task = TaskiqMessage(f"task-{n}", "redis_app:record", {"priority": 2}, [n], {})
        await broker.kick(broker.formatter.dumps(task))
    taken = 0
    async for item in broker.listen():
        await item.reject(f"ValueError: bad input {taken}")  # type: ignore[misc,union-attr]
        taken += 1
        if taken == count:
            break
    return [letter.id for letter in await broker.dead_letters.list()]


async def test_dlq_round_trip_from_the_command_line(new_broker, redis_url, redis_prefix, tmp_path):
    broker = await new_broker()
    ids = await dead_letters(broker, 3)
    args = (tmp_path, redis_url, redis_prefix)

    listed = dlq(*args, "list", "redis_app:broker")
    assert listed.returncode == 0, listed.stderr
    for n, dead_letter_id in enumerate(ids):
        assert f"{dead_letter_id}  " in listed.stdout
        assert f"redis_app:record[task-{n}]" in listed.stdout
    assert "3 of 3 dead letter(s)" in listed.stdout

    shown = dlq(*args, "show", "redis_app:broker", ids[1])
    assert shown.returncode == 0, shown.stderr
    assert "task id:     task-1" in shown.stdout
    assert "args:        [1]" in shown.stdout
    assert "reason:      ValueError: bad input 1" in shown.stdout
    missing = dlq(*args, "show", "redis_app:broker", "1-1")
    assert missing.returncode == 1
    assert "no such dead letter" in missing.stderr

    replayed = dlq(*args, "replay", "redis_app:broker", ids[0])
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 dead letter(s)" in replayed.stdout
    async for item in broker.listen():
        assert broker.formatter.loads(item.data).task_id == "task-0"  # type: ignore[union-attr,arg-type]
        await item.ack()  # type: ignore[misc,union-attr]
        break

    purged = dlq(*args, "purge", "redis_app:broker", "--all")
    assert purged.returncode == 0, purged.stderr
    assert "purged 2 dead letter(s)" in purged.stdout
    assert await broker.dead_letters.count() == 0


@pytest.fixture
def in_app_dir(redis_url, redis_prefix, tmp_path, monkeypatch):
    """Run `main` in this process as ``taskq dlq`` would, next to ``redis_app.py``."""
    monkeypatch.chdir(HERE)
    monkeypatch.setenv("REDIS_APP_URL", redis_url)
    monkeypatch.setenv("REDIS_APP_PREFIX", redis_prefix)
    monkeypatch.setenv("REDIS_APP_OUT", str(tmp_path))
    monkeypatch.delitem(sys.modules, "redis_app", raising=False)
    monkeypatch.syspath_prepend(str(HERE))


def test_dlq_main_lists_shows_replays_and_purges(in_app_dir, redis_url, redis_prefix, capsys):
    async def reject_two() -> list[str]:
        broker = RedisStreamBroker(redis_url, key_prefix=redis_prefix)
        try:
            return await dead_letters(broker, 2)
        finally:
            await broker.shutdown()

    ids = asyncio.run(reject_two())
    assert main(["list", "redis_app:broker", "--count", "1"]) == 0
    assert "1 of 2 dead letter(s)" in capsys.readouterr().out
    assert main(["list", "redis_app:broker", "--after", ids[0]]) == 0
    assert f"{ids[1]}  " in capsys.readouterr().out
    assert main(["show", "redis_app:broker", ids[0], "9-9"]) == 1
    captured = capsys.readouterr()
    assert "task:        redis_app:record" in captured.out
    assert "9-9: no such dead letter" in captured.err
    assert main(["replay", "redis_app:broker", ids[0], "9-9"]) == 1  # one of two not found
    assert "replayed 1 dead letter(s)" in capsys.readouterr().out
    assert main(["purge", "redis_app:broker", ids[1]]) == 0
    assert "purged 1 dead letter(s)" in capsys.readouterr().out


def test_dlq_shows_what_is_not_a_taskq_message(in_app_dir, redis_url, redis_prefix, capsys):
    async def reject_garbage() -> str:
        broker = RedisStreamBroker(redis_url, key_prefix=redis_prefix)
        try:
            await broker.kick(BrokerMessage("id", "x", b"\xff garbage", {}))
            async for item in broker.listen():
                await item.reject()  # type: ignore[misc,union-attr]
                break
            (letter,) = await broker.dead_letters.list()
            return letter.id
        finally:
            await broker.shutdown()

    dead_letter_id = asyncio.run(reject_garbage())
    assert main(["list", "redis_app:broker"]) == 0
    assert "(undecodable, 9 bytes)" in capsys.readouterr().out
    assert main(["show", "redis_app:broker", dead_letter_id]) == 0
    assert "not a taskq message" in capsys.readouterr().out


def test_dlq_usage_errors_say_what_is_wrong(in_app_dir, capsys):
    assert main(["replay", "redis_app:broker"]) == 2
    assert "give dead-letter ids, or --all" in capsys.readouterr().err
    assert main(["list", "no_such_module:broker"]) == 2
    assert "no module named 'no_such_module'" in capsys.readouterr().err
    assert main(["list", "redis_app:OUT"]) == 2
    assert "not an AsyncBroker" in capsys.readouterr().err
    assert main(["list", "taskq:async_shared_broker"]) == 2
    assert "keeps no dead letters" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["--help"]) == 0


def test_dlq_reports_an_unreachable_redis(in_app_dir, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_APP_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setattr("taskq_redis.broker.DEFAULT_SEND_TIMEOUT_S", 0.3)
    import redis_app

    redis_app.broker.send_timeout_s = 0.3
    assert main(["list", "redis_app:broker"]) == 1
    assert "does not answer" in capsys.readouterr().err
