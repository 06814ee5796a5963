"""`run_receiver_task`: a worker inside your own event loop, without ``taskq worker``."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from taskq.abc.broker import AsyncBroker
from taskq.acks import AcknowledgeType
from taskq.receiver.receiver import DEFAULT_MAX_ASYNC_TASKS, Receiver

logger = logging.getLogger("taskq.receiver")

#: Seconds before listening again after the receiver failed.
RESTART_DELAY_S = 1.0


async def run_receiver_task(
    broker: AsyncBroker,
    receiver_cls: type[Receiver] = Receiver,
    sync_workers: int | None = None,
    validate_params: bool = True,
    max_async_tasks: int = DEFAULT_MAX_ASYNC_TASKS,
    max_async_tasks_jitter: int = 0,
    max_prefetch: int = 0,
    propagate_exceptions: bool = True,
    run_startup: bool = False,
    ack_time: AcknowledgeType | None = None,
    use_process_pool: bool = False,
) -> None:
    """Run ``broker``'s tasks in this process until the broker stops or this is cancelled.

    Run it as an asyncio task beside your own code. The broker is marked as a worker
    (``WORKER_STARTUP`` handlers run on `startup`); ``run_startup`` starts it if it is not
    started yet. Sync tasks run in a pool of ``sync_workers`` threads; ``use_process_pool``
    is refused (taskq runs sync tasks in threads: run more workers for CPU-bound tasks).
    A receiver that fails is logged and listens again after
    `RESTART_DELAY_S`. The other arguments are the `Receiver`'s (``ack_time`` is its
    ``ack_type``). Unlike ``taskq worker``, this runs one process and handles no signals.

    Raises:
        ValueError: ``max_prefetch`` is negative, or ``use_process_pool`` is set.
    """
    if max_prefetch < 0:
        raise ValueError("max_prefetch cannot be negative")
    if use_process_pool:
        raise ValueError(
            "use_process_pool is not supported: taskq runs sync tasks in threads; "
            "run more worker processes for CPU-bound tasks"
        )
    executor = ThreadPoolExecutor(max_workers=sync_workers, thread_name_prefix="taskq-sync")
    broker.is_worker_process = True
    with executor:
        while True:
            receiver = receiver_cls(
                broker,
                executor=executor,
                validate_params=validate_params,
                max_async_tasks=max_async_tasks,
                max_async_tasks_jitter=max_async_tasks_jitter,
                max_prefetch=max_prefetch,
                propagate_exceptions=propagate_exceptions,
                run_startup=run_startup,
                ack_type=ack_time,
            )
            try:
                await receiver.listen()
                return
            except Exception:
                logger.warning("The receiver failed; listening again", exc_info=True)
            await asyncio.sleep(RESTART_DELAY_S)
