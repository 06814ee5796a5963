"""Helpers for tests of taskq applications and of brokers, backends and sources.

Tests wait for a condition, never for a duration: a fixed ``sleep`` before an assert is
either too long or flaky. `eventually` polls the condition until it holds; in a plain
(not async) test that drives other processes, `eventually_blocking` does the same without
an event loop (a blocking poll inside a loop would starve what it waits for).
`cancel_until_done` stops a consume loop for sure, even where a client library swallows one
cancellation. `free_port` gives a port for a server a test starts (in another process, say).
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from taskq._cancelling import cancel_until_done

__all__ = ["cancel_until_done", "eventually", "eventually_blocking", "free_port"]

#: Seconds `eventually` waits by default: long enough for a loaded CI machine.
DEFAULT_TIMEOUT_S = 10.0
#: Seconds between two checks of the condition.
DEFAULT_INTERVAL_S = 0.01

_T = TypeVar("_T")


async def eventually(
    condition: Callable[[], _T | Awaitable[_T]],
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    interval: float = DEFAULT_INTERVAL_S,
    what: str | None = None,
) -> _T:
    """Wait until ``condition()`` returns a true value, and return that value.

    Args:
        condition: A callable taking no argument, sync or async; checked at once, then
            every ``interval`` seconds.
        timeout: Seconds to wait before failing (default 10).
        interval: Seconds between two checks (default 0.01).
        what: What is awaited, for the failure message (default: the condition's name).

    Returns:
        The first true value ``condition()`` returned.

    Raises:
        AssertionError: ``condition()`` was still false after ``timeout`` seconds.
        ValueError: ``timeout`` is NaN.
    """
    deadline = _deadline(timeout)
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        _fail_after(deadline, timeout, condition, what)
        await asyncio.sleep(interval)


def eventually_blocking(
    condition: Callable[[], _T],
    timeout: float = DEFAULT_TIMEOUT_S,
    *,
    interval: float = DEFAULT_INTERVAL_S,
    what: str | None = None,
) -> _T:
    """Block until ``condition()`` returns a true value, and return that value.

    `eventually` for plain tests (no event loop); the same arguments, with a sync
    ``condition``.

    Raises:
        AssertionError: ``condition()`` was still false after ``timeout`` seconds.
        ValueError: ``timeout`` is NaN.
    """
    deadline = _deadline(timeout)
    while True:
        value = condition()
        if value:
            return value
        _fail_after(deadline, timeout, condition, what)
        time.sleep(interval)


def _deadline(timeout: float) -> float:
    """The monotonic time ``timeout`` seconds from now; `ValueError` for a NaN ``timeout``."""
    if timeout != timeout:  # NaN: no time is past it, the wait would never fail
        raise ValueError(f"timeout must be a number of seconds, got {timeout!r}")
    return time.monotonic() + timeout


def _fail_after(deadline: float, timeout: float, condition: object, what: str | None) -> None:
    if time.monotonic() >= deadline:
        described = what or getattr(condition, "__qualname__", repr(condition))
        raise AssertionError(f"still waiting after {timeout} s for {described}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` for a server to bind, kept from other programs for about a minute.

    A port read from a socket bound to port 0 and closed may be handed to another program
    before the server binds it. This one is left in ``TIME_WAIT``: meanwhile the system gives
    it to no socket bound to port 0 and to no outgoing connection, while a server that binds
    it with ``SO_REUSEADDR`` (ZeroMQ, asyncio, uvicorn, ``http.server``, ``redis-server``)
    gets it at once.
    """
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        with socket.create_connection((host, port)):
            accepted, _ = listener.accept()
            accepted.close()  # the side that closes first holds TIME_WAIT: this port's
    return port
