"""Static checks of kiq's PEP 612 typing: mypy --strict (the ``types`` env) checks this file.

``assert_type`` fails the check when an inferred type changes; a ``type: ignore`` that is no
longer needed fails it too (strict mode warns about unused ignores).
"""

from __future__ import annotations

from typing_extensions import assert_type

from taskq import AsyncTaskiqTask, TaskiqResult
from taskq_inmemory import InMemoryBroker

broker = InMemoryBroker()


@broker.task
async def add(a: int, b: int) -> int:
    return a + b


@broker.task(task_name="typing:mul", queue="fast")
def mul(a: int, b: int = 2) -> float:
    return a * b * 1.0


async def sends() -> None:
    assert_type(await add.kiq(1, 2), AsyncTaskiqTask[int])
    assert_type(await mul.kiq(3), AsyncTaskiqTask[float])
    assert_type(await add.kicker().with_labels(delay=1).kiq(1, b=2), AsyncTaskiqTask[int])
    result = await (await add.kiq(1, 2)).wait_result()
    assert_type(result, TaskiqResult[int])
    assert_type(result.return_value, int)
    assert_type(await add(1, 2), int)  # calling the task runs the function here
    assert_type(mul(1), float)
    await add.kiq("one", 2)  # type: ignore[call-overload]
    await add.kiq(1)  # type: ignore[call-overload]
    await mul.kiq(1, c=3)  # type: ignore[call-arg]
