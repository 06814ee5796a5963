"""A broker and a result backend made of directories, so that several processes share them.

- ``kick`` writes the message to ``<root>/tmp`` and renames it into ``<root>/queue``.
- ``listen`` claims a message by renaming it into ``<root>/claimed/<pid>`` (a rename succeeds
  for one process only) and yields it as an `AckableMessage` whose ack deletes the file: a
  message that was never acknowledged stays in ``claimed/``.
- Results are JSON files in ``<root>/results``, written the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from taskq import (
    AckableMessage,
    AsyncBroker,
    AsyncResultBackend,
    BrokerMessage,
    Capability,
    ResultGetError,
    TaskiqResult,
)

POLL_INTERVAL_S = 0.02


def _write_atomically(tmp_dir: Path, target: Path, data: bytes) -> None:
    tmp = tmp_dir / f"{target.name}.{os.getpid()}.{time.time_ns()}"
    tmp.write_bytes(data)
    os.rename(tmp, target)


class SpoolResultBackend(AsyncResultBackend[Any]):
    """Results as ``<task_id>.json`` files in a directory."""

    capabilities = frozenset({Capability.CROSS_PROCESS})

    def __init__(self, root: Path) -> None:
        self.results = root / "results"
        self.tmp = root / "tmp"
        for directory in (self.results, self.tmp):
            directory.mkdir(parents=True, exist_ok=True)

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        data = json.dumps(result.to_dict()).encode()
        _write_atomically(self.tmp, self.results / f"{task_id}.json", data)

    async def is_result_ready(self, task_id: str) -> bool:
        return (self.results / f"{task_id}.json").exists()

    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[Any]:
        try:
            data = (self.results / f"{task_id}.json").read_bytes()
        except FileNotFoundError:
            raise ResultGetError(f"no result for task {task_id}") from None
        return TaskiqResult.from_dict(json.loads(data))


class SpoolBroker(AsyncBroker):
    """A queue in a directory, shared by every process that opens the same root."""

    capabilities = frozenset({Capability.ACKS, Capability.CROSS_PROCESS, Capability.LOAD_BALANCING})

    def __init__(self, root: Path) -> None:
        super().__init__(result_backend=SpoolResultBackend(root))
        self.root = root
        self.queue = root / "queue"
        self.tmp = root / "tmp"
        self.queue.mkdir(parents=True, exist_ok=True)

    async def kick(self, message: BrokerMessage) -> None:
        name = f"{time.time_ns():020d}-{message.task_id}"
        _write_atomically(self.tmp, self.queue / name, message.message)

    async def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        claimed_dir = self.root / "claimed" / str(os.getpid())
        claimed_dir.mkdir(parents=True, exist_ok=True)
        while True:
            message = self._claim_one(claimed_dir)
            if message is None:
                await asyncio.sleep(POLL_INTERVAL_S)
            else:
                yield message

    def _claim_one(self, claimed_dir: Path) -> AckableMessage | None:
        for name in sorted(os.listdir(self.queue)):
            claimed = claimed_dir / name
            try:
                os.rename(self.queue / name, claimed)
            except FileNotFoundError:  # another process took it
                continue
            return AckableMessage(data=claimed.read_bytes(), ack=claimed.unlink)
        return None
