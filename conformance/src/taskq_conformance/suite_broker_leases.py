"""Live-consumer safety of brokers with ``redelivery``: a held message stays with a live consumer.

A broker declaring ``redelivery`` states in ``lease_s`` how many seconds after its consumer is
gone a message it held goes to another consumer. While the consumer lives, it keeps what it
holds however long: these checks hold messages for several leases while other consumers listen,
then make the holder vanish (a process killed) and expect every held message back.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
import uuid
from typing import Any

import pytest

from taskq import Capability
from taskq_conformance.instances import (
    FACTORY_CONTRACT,
    LEASE_MARGIN,
    NewBroker,
    lease_of,
    payload,
    settle,
    start_in_another_process,
)
from taskq_conformance.suite_broker import DELIVERY_TIMEOUT, Inbox, inbox, raw_message
from taskq_conformance.tags import TAGS
from taskq_conformance.targets import Target

#: Leases the suite holds messages for while other consumers listen.
HELD_LEASES = 3
#: Messages held.
HELD = 5


def markers() -> list[bytes]:
    """Message bodies no other check sends (tagged with the check's tag)."""
    return [TAGS.tag(f"held-{uuid.uuid4().hex}".encode()) for _ in range(HELD)]


async def stolen_while_held(box: Inbox, held: set[bytes], seconds: float) -> list[bytes]:
    """The held messages another consumer received within ``seconds`` (others are settled)."""
    stolen: list[bytes] = []
    deadline = time.monotonic() + seconds
    while (item := await box.next(deadline - time.monotonic())) is not None:
        if payload(item) in held:
            stolen.append(payload(item))
        await settle(item)
    return stolen


@pytest.mark.taskq_requires(Capability.REDELIVERY)
async def test_a_live_consumer_keeps_what_it_holds(taskq_new_broker: NewBroker) -> None:
    bodies = markers()
    async with taskq_new_broker() as holder, inbox(holder) as holder_box:
        lease = lease_of(holder)
        for body in bodies:
            await holder.kick(raw_message(body))
        taken: list[Any] = []
        while not {payload(item) for item in taken} >= set(bodies):
            taken.extend(await holder_box.take(1))
        # alive and still listening, the holder keeps them while another consumer listens
        async with taskq_new_broker() as other, inbox(other) as other_box:
            stolen = await stolen_while_held(other_box, set(bodies), HELD_LEASES * lease)
            assert not stolen, (
                f"{len(stolen)} of {HELD} messages held by a live, listening consumer were "
                f"delivered to another consumer within {HELD_LEASES} leases of {lease:g} s: "
                "does the broker keep the holder's lease alive while it holds the message?"
            )
            for item in taken:
                await settle(item)


#: What the process holding messages runs: take the bodies, say so, then hold them until killed.
HOLDER = """\
wanted = set({bodies!r})
held = []
async for item in instance.listen():
    held.append(item)
    data = item.data if isinstance(item, taskq.AckableMessage) else item
    wanted.discard(data.encode() if isinstance(data, str) else data)
    if not wanted:
        print("held", flush=True)
        await asyncio.Event().wait()
"""


@pytest.mark.taskq_requires(Capability.REDELIVERY)
@pytest.mark.taskq_requires(Capability.CROSS_PROCESS)
async def test_held_messages_come_back_when_their_consumer_vanishes(
    taskq_new_broker: NewBroker, taskq_broker_target: Target
) -> None:
    if taskq_broker_target.spec is None:
        pytest.skip("the broker comes from a hook: another process cannot make one")
    bodies = markers()
    async with taskq_new_broker() as broker:
        lease = lease_of(broker)
        for body in bodies:
            await broker.kick(raw_message(body))
        holder = start_in_another_process(taskq_broker_target.spec, HOLDER.format(bodies=bodies))
        try:
            await _until_held(holder)
            async with inbox(broker) as box:
                stolen = await stolen_while_held(box, set(bodies), HELD_LEASES * lease)
                assert not stolen, (
                    f"{len(stolen)} of {HELD} messages held by a live consumer in another "
                    f"process were delivered here within {HELD_LEASES} leases of {lease:g} s: "
                    "does the broker keep the holder's lease alive while it holds the message?"
                )
                holder.send_signal(signal.SIGKILL)  # gone without a word: no shutdown, no ack
                window = 2 * lease + LEASE_MARGIN
                back = await _collect(box, set(bodies), window)
                assert back == set(bodies), (
                    f"{HELD - len(back)} of {HELD} messages held by a consumer that was killed "
                    f"did not come back within {window:g} s (twice the lease_s, plus a margin)"
                )
        finally:
            _kill(holder)


async def _until_held(holder: subprocess.Popen[str]) -> None:
    assert holder.stdout is not None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(holder.stdout.readline), DELIVERY_TIMEOUT)
    except asyncio.TimeoutError:
        line = ""
    if line.strip() != "held":
        pytest.fail(
            f"a consumer in another process did not receive the {HELD} messages sent here "
            f"within {DELIVERY_TIMEOUT} s (exit status: {holder.poll()}); {FACTORY_CONTRACT}"
        )


async def _collect(box: Inbox, wanted: set[bytes], seconds: float) -> set[bytes]:
    got: set[bytes] = set()
    deadline = time.monotonic() + seconds
    while got != wanted and (item := await box.next(deadline - time.monotonic())) is not None:
        if payload(item) in wanted:
            got.add(payload(item))
        await settle(item)
    return got


def _kill(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait(timeout=DELIVERY_TIMEOUT)
    if process.stdout is not None:
        process.stdout.close()
