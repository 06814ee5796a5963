"""taskq: an asynchronous distributed task queue.

Decorate functions with ``@broker.task``, send them with ``await f.kiq(...)`` and read
results with ``await task.wait_result()``. Names of sibling packages (``InMemoryBroker``,
``ZeroMQBroker``, ...) resolve lazily from the installed distribution that announces them.
"""

from typing import TYPE_CHECKING, Any

from taskq import _lazy
from taskq.abc.cancellation import Cancellation, CancellationStore
from taskq.abc.event_store import AsyncEventStore
from taskq.abc.formatter import TaskiqFormatter
from taskq.abc.middleware import TaskiqMiddleware
from taskq.abc.result_backend import AsyncResultBackend
from taskq.abc.schedule_source import ScheduleSource
from taskq.abc.serializer import TaskiqSerializer
from taskq.acks import AckableMessage, AcknowledgeType
from taskq.broker import AsyncBroker
from taskq.capabilities import Capability
from taskq.context import Context
from taskq.created_schedule import CreatedSchedule
from taskq.decor import AsyncTaskiqDecoratedTask
from taskq.events import TaskiqEvents
from taskq.exceptions import (
    BatchSendError,
    BrokerError,
    CancellationUnavailableError,
    InvalidLabelError,
    InvalidScheduleError,
    InvalidTaskLimitError,
    ListenError,
    MessageDecodeError,
    MessageNotAckableError,
    NoResultError,
    RemoteTaskError,
    ResultBackendError,
    ResultGetError,
    ResultIsReadyError,
    ResultSetError,
    ScheduledTaskCancelledError,
    SecurityError,
    SendTaskError,
    SerializationError,
    SharedBrokerListenError,
    SharedBrokerSendTaskError,
    SharedStoreRequiredError,
    TaskArgumentsError,
    TaskBrokerMismatchError,
    TaskCancelledError,
    TaskExitError,
    TaskiqError,
    TaskiqResultTimeoutError,
    TaskRejectedError,
    TaskRetriedError,
    TaskTimeoutError,
    UniqueKeyError,
    UnknownTaskError,
    UnsupportedCapabilityError,
)
from taskq.formatters import JSONFormatter, ProxyFormatter
from taskq.gather import gather
from taskq.kicker import AsyncKicker
from taskq.memory_cancellation import InMemoryCancellationStore
from taskq.message import BrokerMessage, TaskiqMessage
from taskq.result import TaskiqResult
from taskq.result_backends import DummyResultBackend
from taskq.scheduled_task import CronSpec, ScheduledTask
from taskq.shared_broker import async_shared_broker
from taskq.state import TaskiqState
from taskq.task import AsyncTaskiqTask
from taskq.task_call import TaskCall

if TYPE_CHECKING:
    from taskiq_dependencies import Depends as TaskiqDepends

    from taskq.progress import ProgressTracker, TaskProgress, TaskState
    from taskq.receiver import Receiver
    from taskq.serializers import (
        CBORSerializer,
        JSONSerializer,
        MSGPackSerializer,
        ORJSONSerializer,
        PickleSerializer,
    )

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if _lazy.is_lazy(name):
        value = _lazy.load(name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'taskq' has no attribute {name!r}")


__all__ = [  # noqa: RUF022 - grouped by concept
    "__version__",
    # brokers and tasks
    "AsyncBroker",
    "AsyncKicker",
    "AsyncTaskiqDecoratedTask",
    "AsyncTaskiqTask",
    "TaskCall",
    "BrokerMessage",
    "TaskiqMessage",
    "AckableMessage",
    "AcknowledgeType",
    "Capability",
    "Context",
    "TaskiqDepends",
    "TaskiqEvents",
    "TaskiqState",
    "async_shared_broker",
    "gather",
    "Receiver",
    # cancellation
    "Cancellation",
    "CancellationStore",
    "InMemoryCancellationStore",
    # results
    "AsyncEventStore",
    "AsyncResultBackend",
    "DummyResultBackend",
    "TaskiqResult",
    "ProgressTracker",
    "TaskProgress",
    "TaskState",
    # extension points
    "TaskiqMiddleware",
    "TaskiqFormatter",
    "TaskiqSerializer",
    "JSONFormatter",
    "ProxyFormatter",
    "JSONSerializer",
    "MSGPackSerializer",
    "CBORSerializer",
    "ORJSONSerializer",
    "PickleSerializer",
    "ScheduleSource",
    "ScheduledTask",
    "CronSpec",
    "CreatedSchedule",
    # errors
    "TaskiqError",
    "BrokerError",
    "CancellationUnavailableError",
    "InvalidLabelError",
    "InvalidTaskLimitError",
    "SharedStoreRequiredError",
    "UniqueKeyError",
    "InvalidScheduleError",
    "ListenError",
    "MessageDecodeError",
    "MessageNotAckableError",
    "NoResultError",
    "RemoteTaskError",
    "ResultBackendError",
    "ResultGetError",
    "ResultIsReadyError",
    "ResultSetError",
    "ScheduledTaskCancelledError",
    "SecurityError",
    "SendTaskError",
    "BatchSendError",
    "SerializationError",
    "SharedBrokerListenError",
    "SharedBrokerSendTaskError",
    "TaskArgumentsError",
    "TaskBrokerMismatchError",
    "TaskCancelledError",
    "TaskExitError",
    "TaskiqResultTimeoutError",
    "TaskRejectedError",
    "TaskRetriedError",
    "TaskTimeoutError",
    "UnknownTaskError",
    "UnsupportedCapabilityError",
]
