"""`CancelWatch`: the tokens of the messages a receiver runs, cancelled as the store reports."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from taskq.cancel_token import CancelToken

if TYPE_CHECKING:
    from taskq.abc.cancellation import CancellationStore

logger = logging.getLogger("taskq.receiver")

#: Seconds before listening again after the store failed, doubled up to the maximum.
FIRST_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 10.0


class CancelWatch:
    """Gives each running message a `CancelToken` and cancels it when ``store`` says so.

    A message is registered before the store is checked for it, and the listener checks
    every registered message again each time it (re)starts listening: a cancellation is
    seen whenever it is recorded, before or during the run.
    """

    def __init__(self, store: CancellationStore) -> None:
        """Watch the cancellations ``store`` records."""
        self.store = store
        self.tokens: dict[str, CancelToken] = {}
        self._listener: asyncio.Task[None] | None = None
        # the loop it listens on, where the runs it watches are awaited (None: not listening)
        self._loop: asyncio.AbstractEventLoop | None = None

    def register(self, task_id: str) -> CancelToken:
        """Return the token of a run of ``task_id`` starting now (`unregister` it at the end)."""
        token = CancelToken(task_id, self._loop)
        self.tokens[task_id] = token
        return token

    def unregister(self, token: CancelToken) -> None:
        """Forget a finished run."""
        if self.tokens.get(token.task_id) is token:
            del self.tokens[token.task_id]

    def start(self) -> None:
        """Start listening to the store (in the background) unless it listens already."""
        if self._listener is None or self._listener.done():
            self._loop = asyncio.get_running_loop()
            self._listener = self._loop.create_task(self._listen())

    async def stop(self) -> None:
        """Stop listening."""
        listener, self._listener = self._listener, None
        self._loop = None
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _listen(self) -> None:
        delay = FIRST_RETRY_DELAY_S
        while True:
            try:
                feed = await self.store.listen()
                try:
                    await self._check_running()
                    delay = FIRST_RETRY_DELAY_S
                    async for cancellation in feed:
                        token = self.tokens.get(cancellation.task_id)
                        if token is not None:
                            token.cancel(cancellation.reason)
                finally:
                    await feed.aclose()
            except Exception as exc:
                logger.warning(
                    "Cannot listen for cancellations (%r); trying again in %.1f s", exc, delay
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY_S)

    async def _check_running(self) -> None:
        """Cancel the running messages whose cancellation was recorded while nobody listened."""
        for task_id, token in list(self.tokens.items()):
            cancellation = await self.store.cancellation(task_id)
            if cancellation is not None:
                token.cancel(cancellation.reason)
