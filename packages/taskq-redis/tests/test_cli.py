"""``taskq dlq``: list, show, replay and purge dead letters from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from taskq import TaskiqMessage
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
        await item.reject()  # type: ignore[misc,union-attr]
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
    assert "rejected by the worker" in shown.stdout
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


def test_dlq_usage_errors_say_what_is_wrong(redis_url, redis_prefix, tmp_path):
    args = (tmp_path, redis_url, redis_prefix)
    no_ids = dlq(*args, "replay", "redis_app:broker")
    assert no_ids.returncode == 2
    assert "give dead-letter ids, or --all" in no_ids.stderr
    bad_target = dlq(*args, "list", "no_such_module:broker")
    assert bad_target.returncode == 2
    assert "no module named 'no_such_module'" in bad_target.stderr
    not_redis = dlq(*args, "list", "redis_app:OUT")
    assert not_redis.returncode == 2
    assert "not an AsyncBroker" in not_redis.stderr
    no_action = dlq(*args)
    assert no_action.returncode == 2
