"""`taskq.reconnect.Reconnector`: retries what fails on the connection, logs each outage once."""

from __future__ import annotations

import logging

import pytest

from taskq.reconnect import Reconnector

logger = logging.getLogger("taskq.test-reconnect")


def reconnector(max_delay_s: float = 0.01) -> Reconnector:
    return Reconnector("Server", "server://host", max_delay_s, (ConnectionError,), logger, repr)


def failing(times: int, error: BaseException) -> tuple[list[int], object]:
    calls: list[int] = []

    async def operation() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "answer"

    return calls, operation


async def test_a_call_is_retried_until_it_succeeds_and_the_outage_logged_once(caplog):
    caplog.set_level(logging.WARNING, logger.name)
    calls, operation = failing(4, ConnectionError("refused"))
    assert await reconnector().call("ask", operation) == "answer"
    assert len(calls) == 5
    lost = [r.getMessage() for r in caplog.records if "Lost the connection" in r.getMessage()]
    assert lost == [
        "Lost the connection to Server at server://host while trying to ask "
        "(ConnectionError('refused')); retrying every 0.01 s at most until it answers"
    ]
    assert "Reconnected to Server at server://host after" in caplog.text


async def test_other_errors_are_the_answer():
    calls, operation = failing(1, ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        await reconnector().call("ask", operation)
    assert len(calls) == 1


async def test_a_call_gives_up_after_the_time_given_or_once_closed():
    calls, operation = failing(10**6, ConnectionError("down"))
    with pytest.raises(ConnectionError):
        await reconnector().call("ask", operation, give_up_after_s=0.05)
    closed = reconnector()
    closed.closed = True
    calls, operation = failing(10**6, ConnectionError("down"))
    with pytest.raises(ConnectionError):
        await closed.call("ask", operation)
    assert len(calls) == 1


async def test_pauses_double_up_to_the_cap():
    policy = reconnector(max_delay_s=0.004)
    delays = [0.001]
    for _ in range(4):
        delays.append(await policy.pause("ask", ConnectionError(), delays[-1]))
    assert delays == [0.001, 0.002, 0.004, 0.004, 0.004]


async def test_once_a_call_gave_up_the_calls_of_that_outage_try_once_until_it_answers():
    policy = reconnector()
    _, down = failing(10**6, ConnectionError("down"))
    with pytest.raises(ConnectionError):
        await policy.call("ask", down, give_up_after_s=0.05)
    calls, operation = failing(10**6, ConnectionError("down"))
    with pytest.raises(ConnectionError):
        await policy.call("ask", operation, give_up_after_s=60)
    assert len(calls) == 1
    # an answer ends the outage: the next call retries for its whole time again
    assert await policy.call("ask", failing(0, ConnectionError())[1]) == "answer"
    calls, operation = failing(2, ConnectionError("down"))
    assert await policy.call("ask", operation, give_up_after_s=60) == "answer"
    assert len(calls) == 3


async def test_a_call_without_retries_does_not_cut_short_the_others():
    policy = reconnector()
    _, down = failing(10**6, ConnectionError("down"))
    with pytest.raises(ConnectionError):
        await policy.call("ask", down, give_up_after_s=0)
    calls, operation = failing(2, ConnectionError("down"))
    assert await policy.call("ask", operation, give_up_after_s=60) == "answer"
    assert len(calls) == 3
