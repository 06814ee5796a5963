"""Quickstart: send sync and async tasks to an in-memory broker and print their results.

Run it with ``python examples/quickstart.py`` after installing taskq-core and taskq-inmemory.
"""

from __future__ import annotations

import asyncio
import logging

from taskq import InMemoryBroker, gather

broker = InMemoryBroker()


@broker.task
async def add(a: int, b: int) -> int:
    """An async task: runs on the worker's event loop."""
    await asyncio.sleep(0.01)
    return a + b


@broker.task
def word_count(text: str) -> int:
    """A sync task: runs in the worker's thread pool."""
    return len(text.split())


@broker.task
async def divide(a: float, b: float) -> float:
    """A task that fails for b == 0: the error comes back in the result."""
    return a / b


async def main() -> None:
    # The worker logs each failed task once, with its traceback.
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    await broker.startup()

    total = await add.kiq(2, 3)
    print("add(2, 3) =", (await total.wait_result()).return_value)

    words = await word_count.kiq("taskq runs sync functions too")
    print("word_count(...) =", (await words.wait_result()).return_value)

    # Arguments are cast to the annotations on the worker: "7" arrives as the int 7.
    many = [await add.kiq(n, "7") for n in range(5)]
    print("add(n, '7') for n in 0..4 =", [r.return_value for r in await gather(*many)])

    failed = await (await divide.kiq(1, 0)).wait_result()
    print("divide(1, 0) failed:", failed.is_err, "-", type(failed.error).__name__, failed.error)

    await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
