"""Static checks of the PEP 612 typing of kiq and kiq_many: mypy --strict checks this file.

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


@broker.task
async def greet(name: str) -> str:
    return f"hello {name}"


async def sends_many() -> None:
    call = add.call(1, 2)  # a TaskCall checked against add(a: int, b: int)
    assert_type(await add.kiq_many([call, add.call(3, b=4)]), list[AsyncTaskiqTask[int]])
    assert_type(await mul.kiq_many(mul.call(n) for n in range(3)), list[AsyncTaskiqTask[float]])
    labelled = add.kicker().with_labels(priority=3)
    assert_type(await labelled.kiq_many([add.call(1, 2)]), list[AsyncTaskiqTask[int]])
    add.call("one", 2)  # type: ignore[arg-type]
    add.call(1)  # type: ignore[call-arg]
    await add.kiq_many([greet.call("x")])  # type: ignore[list-item]
    await add.kiq_many([(1, 2)])  # type: ignore[list-item]
