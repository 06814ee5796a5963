"""`running_loop`: the running event loop, without a system call per lookup before Python 3.12."""

from __future__ import annotations

import asyncio
import sys

if sys.version_info >= (3, 12):

    def running_loop(known: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
        """The running event loop (``known``: a loop seen before, unused from Python 3.12)."""
        return asyncio.get_running_loop()

else:  # pragma: no cover - exercised on 3.10 and 3.11

    def running_loop(known: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
        """The running event loop: ``known`` (a loop seen before) if it still runs.

        Before Python 3.12 ``asyncio.get_running_loop()`` calls ``getpid()``, a system call,
        each time. A loop that runs is the running loop of this thread, as long as the
        objects using it stay in one thread (asyncio's are bound to one anyway).
        """
        if known is not None and known.is_running():
            return known
        return asyncio.get_running_loop()
