"""Test and benchmark helpers: the dashboard served over real HTTP for a real browser.

`Served` runs uvicorn and the broker on one event loop in a thread; `chromium_or_skip` finds
the system Chromium (``TASKQ_CHROMIUM``, default ``/usr/bin/chromium``) that Playwright
drives, and skips a test without it (fails it with ``CI=true``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import uvicorn

from taskq_dashboard import create_app

_T = TypeVar("_T")

#: The browser the tests and the benchmark drive.
CHROMIUM = os.environ.get("TASKQ_CHROMIUM", "/usr/bin/chromium")
#: Seconds uvicorn may take to listen on a loaded machine.
STARTUP_TIMEOUT_S = 30.0


def chromium_or_skip() -> str:
    """The browser's path; skip (fail with CI=true) when it or Playwright is missing."""
    missing = None
    if shutil.which(CHROMIUM) is None:
        missing = f"no browser at {CHROMIUM} (apt-get install chromium, or set TASKQ_CHROMIUM)"
    else:
        if importlib.util.find_spec("playwright") is None:
            missing = "playwright is not installed (pip install playwright)"
    if missing is not None:
        import pytest

        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {missing}")
        pytest.skip(missing)
    return CHROMIUM


class Served:
    """A dashboard app served by uvicorn on 127.0.0.1 from a thread with its own event loop."""

    def __init__(self, app: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        # port 0: the server binds a port the system picks, no other program can take it first
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self._serving = asyncio.run_coroutine_threadsafe(self.server.serve(), self.loop)
        self._wait_until_listening()
        self.port = int(self.server.servers[0].sockets[0].getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def _wait_until_listening(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Return once uvicorn listens: a browser sent at once would find the port closed."""
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self._serving.done():
                self._serving.result()  # raises what stopped it
                raise RuntimeError("the dashboard stopped before it listened")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the dashboard did not listen within {timeout} s")
            time.sleep(0.01)

    def run(self, coroutine: Coroutine[Any, Any, _T], timeout: float = 30) -> _T:
        """Run ``coroutine`` on the server's loop (where the broker runs) and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop serving, end what still runs on the loop, then stop and close the loop.

        Tasks left pending on a loop that is only stopped would be finalized whenever the
        garbage collector gets to them, each failing on the closed loop.
        """
        self.server.should_exit = True
        self._serving.result(30)
        asyncio.run_coroutine_threadsafe(_end_the_rest(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


async def _end_the_rest() -> None:
    """Cancel every other task of the running loop, wait for them, close its async generators."""
    current = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not current]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


def serve(broker: Any, **options: Any) -> Iterator[Served]:
    """Serve ``create_app(broker, **options)`` until the generator is closed."""
    served = Served(create_app(broker, **options))
    try:
        yield served
    finally:
        served.stop()
