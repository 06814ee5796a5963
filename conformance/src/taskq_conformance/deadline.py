"""A deadline for each check: one that runs past it fails, naming the call it was waiting on."""

from __future__ import annotations

import asyncio
import functools
import linecache
import sysconfig
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent
STDLIB_DIR = Path(sysconfig.get_paths()["stdlib"]).resolve()
#: Seconds a check that overran its deadline is given to end once cancelled.
CANCEL_GRACE = 5.0

Check = Callable[..., Awaitable[Any]]


def with_deadline(check: Check, seconds: float) -> Check:
    """``check`` failing after ``seconds``, naming where it waited, instead of hanging the run."""

    @functools.wraps(check)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        task = asyncio.ensure_future(check(*args, **kwargs))
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if done:
            return task.result()
        where = waiting_at(task)
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_GRACE)
        pytest.fail(
            f"the check did not end within {seconds:g} s (--taskq-check-timeout, plus the model "
            f"budget); it was waiting at {where}",
            pytrace=False,
        )

    return guarded


def waiting_at(task: asyncio.Future[Any]) -> str:
    """The suite's innermost line ``task`` waits on and, below it, the tested code's."""
    frames = list(_awaited_frames(task))
    in_suite = [n for n, frame in enumerate(frames) if _directory(frame) == PACKAGE_DIR]
    if not in_suite:
        return "an unknown place"
    below = frames[in_suite[-1] + 1 :]
    tested = [frame for frame in below if not _in_stdlib(frame)]
    where = _describe(frames[in_suite[-1]])
    return f"{where}, in {_describe(tested[-1])}" if tested else where


def _awaited_frames(awaitable: Any) -> Iterator[FrameType]:
    """The frames of the chain of awaits from ``awaitable`` down.

    The chain ends at a future (a task awaited, a gather, a wait_for): what runs there is not
    reachable from here, and the suite's line awaiting it names the call.
    """
    seen: set[int] = set()
    while awaitable is not None and id(awaitable) not in seen:
        seen.add(id(awaitable))
        if isinstance(awaitable, asyncio.Task):
            awaitable = awaitable.get_coro()
            continue
        frame = getattr(awaitable, "cr_frame", None)
        if frame is not None:
            yield frame
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)


def _directory(frame: FrameType) -> Path:
    return Path(frame.f_code.co_filename).resolve().parent


def _in_stdlib(frame: FrameType) -> bool:
    directory = _directory(frame)
    return directory.is_relative_to(STDLIB_DIR) and "site-packages" not in directory.parts


def _describe(frame: FrameType) -> str:
    """``HangingBroker.kick (mypkg/broker.py:12: await self.send(data))``."""
    code = frame.f_code
    line = linecache.getline(code.co_filename, frame.f_lineno).strip()
    name = getattr(code, "co_qualname", code.co_name)
    return f"{name} ({Path(code.co_filename).name}:{frame.f_lineno}: {line})"
