"""`run_scheduler_task`: a scheduler inside your own event loop, without ``taskq scheduler``."""

from __future__ import annotations

from datetime import timedelta

from taskq_scheduler.scheduler import DEFAULT_UPDATE_INTERVAL_S, TaskiqScheduler


async def run_scheduler_task(
    scheduler: TaskiqScheduler,
    run_startup: bool = False,
    interval: timedelta | None = None,
    loop_interval: timedelta | None = None,
) -> None:
    """Send ``scheduler``'s fires until this is cancelled; run it as an asyncio task.

    The sources are started first; ``run_startup`` also starts the broker (see
    `TaskiqScheduler.startup`). ``interval`` is the time between two reads of the sources
    (default one minute; a zero or negative one raises `ValueError`). ``loop_interval`` is
    accepted for taskiq's signature and not needed: the loop sleeps until the next fire is
    due. Nothing is shut down on the way out.
    """
    del loop_interval  # the loop wakes for each fire itself
    if run_startup:
        await scheduler.startup()
    else:
        for source in scheduler.sources:
            await source.startup()
    # ``interval or ...`` would read timedelta(0) as "not given": it is refused instead
    await scheduler.run(update_interval=DEFAULT_UPDATE_INTERVAL_S if interval is None else interval)
