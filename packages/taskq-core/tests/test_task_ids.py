"""Task ids: version-4 UUID hex, unique across threads and across a fork."""

from __future__ import annotations

import os
import sys
import threading
import uuid

import pytest

from taskq.task_ids import BATCH, default_id_generator


def test_ids_are_version_4_uuids_as_32_hex_digits() -> None:
    for task_id in (default_id_generator() for _ in range(3 * BATCH)):
        parsed = uuid.UUID(hex=task_id)
        assert parsed.hex == task_id
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)


def test_ids_handed_to_many_threads_are_all_different() -> None:
    per_thread: list[list[str]] = [[] for _ in range(8)]

    def draw(into: list[str]) -> None:
        into.extend(default_id_generator() for _ in range(5 * BATCH))

    threads = [threading.Thread(target=draw, args=(ids,)) for ids in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [task_id for ids in per_thread for task_id in ids]
    assert len(set(everything)) == len(everything) == 8 * 5 * BATCH


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_the_ids_its_parent_holds() -> None:
    default_id_generator()  # the pool now holds ids the parent will hand out next
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the ids it makes, then leave at once
        os.close(read_end)
        os.write(write_end, "".join(default_id_generator() for _ in range(BATCH)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child_digits = pipe.read().decode()
    os.waitpid(pid, 0)
    child_ids = {child_digits[i : i + 32] for i in range(0, len(child_digits), 32)}
    parent_ids = {default_id_generator() for _ in range(BATCH)}
    assert len(child_ids) == BATCH
    assert not child_ids & parent_ids


def test_the_broker_uses_it_unless_given_another_generator() -> None:
    from taskq_inmemory import InMemoryBroker

    assert InMemoryBroker().id_generator is default_id_generator
    assert sys.modules["taskq.broker"].default_id_generator is default_id_generator
