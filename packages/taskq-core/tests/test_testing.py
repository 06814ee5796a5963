"""`taskq.testing`: waiting for a condition instead of a duration, and ports for servers."""

from __future__ import annotations

import asyncio
import errno
import socket
import threading

import pytest

from taskq.testing import eventually, eventually_blocking, free_port


async def test_eventually_returns_the_first_true_value_once_the_condition_holds() -> None:
    seen: list[int] = []
    asyncio.get_running_loop().call_later(0.02, seen.append, 7)

    assert await eventually(lambda: seen) == [7]


async def test_eventually_awaits_an_async_condition() -> None:
    async def ready() -> str:
        return "yes"

    assert await eventually(ready) == "yes"


async def test_eventually_fails_with_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"after 0.05 s for the moon"):
        await eventually(lambda: False, 0.05, what="the moon")


def test_eventually_blocking_waits_without_an_event_loop() -> None:
    done = threading.Event()
    threading.Timer(0.02, done.set).start()

    assert eventually_blocking(done.is_set) is True


def test_eventually_blocking_fails_with_the_condition_name_by_default() -> None:
    def never() -> bool:
        return False

    with pytest.raises(AssertionError, match=r"for .*never"):
        eventually_blocking(never, 0.05)


async def test_eventually_refuses_a_nan_timeout_rather_than_waiting_forever() -> None:
    with pytest.raises(ValueError, match="nan"):
        await asyncio.wait_for(eventually(lambda: False, timeout=float("nan")), 10)


def test_eventually_blocking_refuses_a_nan_timeout() -> None:
    calls: list[int] = []

    def never() -> bool:
        calls.append(1)
        if len(calls) > 1000:  # the old code would loop here for good
            raise RuntimeError("still waiting")
        return False

    with pytest.raises(ValueError, match="nan"):
        eventually_blocking(never, timeout=float("nan"), interval=0)


def test_free_port_is_kept_from_other_programs_but_a_server_binds_it() -> None:
    # a port probed with bind(0) and closed was free for anyone: another test's server took
    # it now and then (EADDRINUSE) before the server it was meant for bound it
    port = free_port()
    with socket.socket() as other, pytest.raises(OSError, match="in use") as refused:
        other.bind(("127.0.0.1", port))  # as a bind to port 0 would pick it
    assert refused.value.errno == errno.EADDRINUSE
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
