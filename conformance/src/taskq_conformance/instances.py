"""Making, starting and stopping the instances under test, with what a test needs around them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from taskq import AckableMessage, AsyncBroker, AsyncResultBackend, DummyResultBackend, TaskiqResult
from taskq.exceptions import ResultGetError
from taskq.toolkit import maybe_await
from taskq_conformance.targets import Target, make_instance

#: What the ``taskq_new_*`` fixtures return: call it, then ``async with`` the result.
NewBroker = Callable[..., AbstractAsyncContextManager[AsyncBroker]]
NewBackend = Callable[[], AbstractAsyncContextManager[Any]]
NewSource = Callable[[], AbstractAsyncContextManager[Any]]
NewEventStore = Callable[[], AbstractAsyncContextManager[Any]]
NewLimiter = Callable[[], AbstractAsyncContextManager[Any]]
NewUniqueStore = Callable[[], AbstractAsyncContextManager[Any]]
NewCancellationStore = Callable[[], AbstractAsyncContextManager[Any]]

#: Seconds a start or stop may take before the suite calls it a hang.
LIFECYCLE_TIMEOUT = 30.0


class SuiteResultBackend(AsyncResultBackend[Any]):
    """A dict backend that wakes waiters, given to brokers under test that keep no results."""

    def __init__(self) -> None:
        self.results: dict[str, TaskiqResult[Any]] = {}
        self.stored = asyncio.Condition()

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        """Keep the result and wake waiters."""
        async with self.stored:
            self.results[task_id] = result
            self.stored.notify_all()

    async def is_result_ready(self, task_id: str) -> bool:
        """Tell whether the result is kept."""
        return task_id in self.results

    async def get_result(self, task_id: str, with_logs: bool = True) -> TaskiqResult[Any]:
        """Return the kept result."""
        try:
            return self.results[task_id]
        except KeyError:
            raise ResultGetError(f"no result for {task_id}") from None

    async def wait_ready(self, task_id: str, timeout: float | None, check_interval: float) -> bool:
        """Wait on the condition instead of polling."""
        async with self.stored:
            try:
                await asyncio.wait_for(
                    self.stored.wait_for(lambda: task_id in self.results), timeout
                )
            except asyncio.TimeoutError:
                return False
        return True


@asynccontextmanager
async def started_broker(target: Target, worker: bool = True) -> AsyncIterator[AsyncBroker]:
    """A fresh broker from ``target``, started (as a worker by default), shut down after."""
    broker: AsyncBroker = await make_instance(target)
    broker.is_worker_process = worker
    if isinstance(broker.result_backend, DummyResultBackend):
        broker.with_result_backend(SuiteResultBackend())
    await within(broker.startup(), LIFECYCLE_TIMEOUT, f"{type(broker).__name__}.startup()")
    try:
        yield broker
    finally:
        await within(broker.shutdown(), LIFECYCLE_TIMEOUT, f"{type(broker).__name__}.shutdown()")


@asynccontextmanager
async def started(target: Target) -> AsyncIterator[Any]:
    """A fresh instance (not a broker) from ``target``, started, shut down after."""
    instance = await make_instance(target)
    name = type(instance).__name__
    await within(instance.startup(), LIFECYCLE_TIMEOUT, f"{name}.startup()")
    try:
        yield instance
    finally:
        await within(instance.shutdown(), LIFECYCLE_TIMEOUT, f"{name}.shutdown()")


async def within(awaitable: Awaitable[Any], seconds: float, call: str) -> Any:
    """Await ``awaitable``; fail the check, naming ``call``, if it takes over ``seconds``."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        pytest.fail(f"{call} did not return within {seconds:g} s", pytrace=False)


def payload(item: bytes | str | AckableMessage) -> bytes:
    """The bytes of a message yielded by ``listen``."""
    data = item.data if isinstance(item, AckableMessage) else item
    return data.encode() if isinstance(data, str) else data


async def settle(item: bytes | str | AckableMessage) -> None:
    """Acknowledge a received message when the broker wants it acknowledged."""
    if isinstance(item, AckableMessage):
        await maybe_await(item.ack())


#: What a failure that needs two instances points at when the second saw nothing of the first.
FACTORY_CONTRACT = (
    "every instance the factory makes in one run, in this process or another, must reach the "
    "same queue or store: does the factory make a fresh one on each call? (see 'What a factory "
    "must do' in the conformance guide)"
)


def child_environment() -> dict[str, str]:
    """The environment for a process that must import the target as this one does.

    Targets are often importable only through what pytest put on ``sys.path`` (the
    ``pythonpath`` ini key, the rootdir, a conftest's directory): hand that path on.
    """
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def run_in_another_process(spec: str, body: str, timeout: float) -> None:
    """Run ``body`` in a new Python process, with ``instance`` made by ``spec`` and started.

    ``body`` is async Python code that may use ``instance``, ``taskq`` and ``uuid``; the
    instance is shut down after it. Raises `subprocess.CalledProcessError` when it fails.
    """
    subprocess.run(
        [sys.executable, "-c", _script(spec, body)],
        check=True,
        timeout=timeout,
        env=child_environment(),
    )


def start_in_another_process(spec: str, body: str) -> subprocess.Popen[str]:
    """Start what `run_in_another_process` runs, without waiting; its stdout is a pipe."""
    return subprocess.Popen(
        [sys.executable, "-c", _script(spec, body)],
        stdout=subprocess.PIPE,
        text=True,
        env=child_environment(),
    )


def _script(spec: str, body: str) -> str:
    module, _, attribute = spec.partition(":")
    return (
        "import asyncio, importlib, inspect, uuid\n"
        "import taskq\n"
        f"factory = importlib.import_module({module!r})\n"
        f"for part in {attribute!r}.split('.'):\n"
        "    factory = getattr(factory, part)\n"
        "async def main():\n"
        "    instance = factory()\n"
        "    if inspect.isawaitable(instance):\n"
        "        instance = await instance\n"
        "    await instance.startup()\n"
        f"{textwrap.indent(body, '    ')}\n"
        "    await instance.shutdown()\n"
        "asyncio.run(main())\n"
    )


#: Seconds a consumer's messages may take to come back beyond its lease (a look for
#: expired leases, a read that was waiting, a loaded machine).
LEASE_MARGIN = 5.0


def lease_of(broker: AsyncBroker) -> float:
    """The broker's ``lease_s``: seconds after which a gone consumer's messages come back.

    Fails the test, saying what is missing, when a broker declaring ``redelivery`` has none.
    """
    lease = getattr(broker, "lease_s", None)
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not lease > 0:
        pytest.fail(
            "a broker declaring 'redelivery' states in a positive `lease_s` attribute how many "
            "seconds after its consumer is gone a message it held goes to another consumer "
            f"(got {lease!r}); the factory may set it short so that the suite runs fast"
        )
    return float(lease)
