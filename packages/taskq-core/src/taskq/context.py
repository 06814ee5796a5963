"""`Context`: what a running task can know and do about its own message."""

from __future__ import annotations

from typing import NoReturn

from taskq.acks import AckController

# Imported at run time (not only for type checking): dependency injection reads the hints.
from taskq.broker import AsyncBroker
from taskq.cancel_token import CancelToken
from taskq.exceptions import MessageNotAckableError, NoResultError, TaskRejectedError
from taskq.message import TaskiqMessage
from taskq.state import TaskiqState

#: The label that counts how many times a message was requeued by `Context.requeue`.
REQUEUE_LABEL = "requeue_count"


class Context:
    """The running task's message, broker and state, with ack, requeue, reject and cancellation.

    Get it in a task with ``context: Context = TaskiqDepends()``.
    """

    def __init__(
        self,
        message: TaskiqMessage,
        broker: AsyncBroker,
        ack_controller: AckController | None = None,
        cancel_token: CancelToken | None = None,
    ) -> None:
        """Describe the run of ``message`` on ``broker``."""
        self.message = message
        self.broker = broker
        self.state: TaskiqState = broker.state
        self._ack_controller = ack_controller
        self._cancel_token = cancel_token

    @property
    def cancelled(self) -> bool:
        """Whether this task's cancellation was asked for while it runs (any thread may read it).

        Async tasks are stopped by the worker; sync tasks check this and stop themselves.
        Always false on a broker without a cancellation store.
        """
        return self._cancel_token is not None and self._cancel_token.cancelled

    def raise_if_cancelled(self) -> None:
        """Raise `TaskCancelledError` if this task's cancellation was asked for (see `cancelled`).

        Let it propagate: the task's result is then the failed result of a cancelled task.
        """
        if self._cancel_token is not None and self._cancel_token.cancelled:
            raise self._cancel_token.error()

    @property
    def is_ackable(self) -> bool:
        """Whether the broker wants this message acknowledged."""
        return self._ack_controller is not None and self._ack_controller.is_ackable

    @property
    def is_acked(self) -> bool:
        """Whether the message was already acknowledged."""
        return self._ack_controller is not None and self._ack_controller.is_acked

    async def ack(self) -> None:
        """Acknowledge the message now (for the ``manual`` ack mode); idempotent.

        Raises:
            MessageNotAckableError: the message cannot be acknowledged (see `is_ackable`).
        """
        if self._ack_controller is None or not self._ack_controller.is_ackable:
            raise MessageNotAckableError
        await self._ack_controller.ack()

    async def requeue(self) -> NoReturn:
        """Send this message again (counting it in the ``requeue_count`` label); store no result.

        Raises `NoResultError`, which the receiver handles: let it propagate.
        """
        labels = self.message.labels
        labels[REQUEUE_LABEL] = int(labels.get(REQUEUE_LABEL, 0)) + 1
        await self.broker.kick(self.broker.formatter.dumps(self.message))
        if self._ack_controller is not None:  # this delivery is replaced by the new one
            await self._ack_controller.ack()
        raise NoResultError

    def reject(self) -> NoReturn:
        """Reject the message (through the broker's reject where it has one); store no result.

        Raises `TaskRejectedError`, which the receiver handles: let it propagate.
        """
        raise TaskRejectedError
