"""Formatters: the default one encodes a message as a plain dict with the broker's serializer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskq.abc.formatter import TaskiqFormatter
from taskq.abc.serializer import TaskiqSerializer
from taskq.exceptions import MessageDecodeError, SerializationError
from taskq.label_types import parse_typed_labels
from taskq.labels import UNIQUE_LABEL
from taskq.message import BrokerMessage, TaskiqMessage
from taskq.serializers.json import JSONSerializer
from taskq.serializers.json_round_trip import UNCERTAIN, round_trip_copy
from taskq.task_events import stored_task_id

if TYPE_CHECKING:
    from taskq.abc.broker import AsyncBroker


def message_to_dict(message: TaskiqMessage) -> dict[str, Any]:
    """Return the plain-data wire form of a task message."""
    return {
        "task_id": message.task_id,
        "task_name": message.task_name,
        "labels": message.labels,
        "args": message.args,
        "kwargs": message.kwargs,
    }


def message_from_dict(data: Any) -> TaskiqMessage:
    """Validate decoded wire data and build a `TaskiqMessage`; `MessageDecodeError` if invalid."""
    try:  # every message taskq sends has these five keys only, with these types
        task_id, task_name = data["task_id"], data["task_name"]
        labels, args, kwargs = data["labels"], data["args"], data["kwargs"]
    except (KeyError, TypeError):
        pass
    else:
        if (
            type(task_id) is str
            and type(task_name) is str
            and task_id
            and task_name
            and type(labels) is dict
            and type(args) is list
            and type(kwargs) is dict
            and type(data) is dict
            and len(data) == 5  # a taskiq client adds labels_types
        ):
            return TaskiqMessage(task_id, task_name, labels, args, kwargs)
    return _checked_message(data)


def _checked_message(data: Any) -> TaskiqMessage:
    """`message_from_dict` for data from other senders: defaults, lenient args, clear errors.

    The labels of a taskiq client get their types back from its ``labels_types``. Once the
    data is a mapping with a ``task_id`` string, a `MessageDecodeError` carries that id as
    ``task_id``, so that the worker can store the failure where the sender waits for it; its
    reason names the task as the event stores keep its id (`stored_task_id`: not megabytes).
    """
    if not isinstance(data, Mapping):
        raise MessageDecodeError(reason=f"expected a mapping, got {type(data).__name__}")
    task_id, task_name = data.get("task_id"), data.get("task_name")
    labels, args, kwargs = data.get("labels", {}), data.get("args", []), data.get("kwargs", {})
    if type(task_id) is not str or not task_id:
        raise MessageDecodeError(reason="task_id is missing or not a string")
    known: dict[str, Any] = {"task_id": task_id, "unique_key": _unique_key_in(labels)}
    if type(task_name) is not str or not task_name:
        raise _refused("task_name is missing or not a string", known)
    if type(labels) is not dict or type(kwargs) is not dict:
        raise _refused("labels and kwargs must be mappings", known)
    if type(args) is not list:
        args = _as_list(args, known)
    try:
        parse_typed_labels(labels, data.get("labels_types"))
    except ValueError as exc:
        raise _refused(str(exc), known) from None
    return TaskiqMessage(task_id, task_name, labels, args, kwargs)


def _unique_key_in(labels: Any) -> str | None:
    """The unique task key in ``labels``, if they are a mapping holding one."""
    key = labels.get(UNIQUE_LABEL) if isinstance(labels, Mapping) else None
    return key if isinstance(key, str) and key else None


def _as_list(args: Any, known: dict[str, Any]) -> list[Any]:
    if isinstance(args, (list, tuple)):  # a list subclass, or a tuple from a binary serializer
        return list(args)
    raise _refused(f"args must be a list, got {type(args).__name__}", known)


def _refused(reason: str, known: dict[str, Any]) -> MessageDecodeError:
    """The error refusing the message of ``known`` (its task id, its unique key) for ``reason``.

    The reason names the task as the event stores keep its id (`stored_task_id`), so that an
    id of megabytes is not repeated whole in the stored failure and the log.
    """
    return MessageDecodeError(reason=f"{reason} (task {stored_task_id(known['task_id'])})", **known)


def encode_message(serializer: TaskiqSerializer, message: TaskiqMessage) -> BrokerMessage:
    """Encode ``message`` with ``serializer``; `SerializationError` if an argument cannot be."""
    task_id, task_name = message.task_id, message.task_name
    labels, args, kwargs = message.labels, message.args, message.kwargs
    if (
        type(serializer) is JSONSerializer
        and type(task_id) is str
        and type(task_name) is str
        and type(labels) is dict
        and type(args) is list
        and type(kwargs) is dict
    ):  # the usual message: encoded the faster way, to the same bytes
        data = serializer.dumpb_message(task_id, task_name, labels, args, kwargs)
        return BrokerMessage(task_id, task_name, data, labels)
    return BrokerMessage(
        message.task_id,
        message.task_name,
        serializer.dumpb(message_to_dict(message)),
        message.labels,
    )


def decode_message(serializer: TaskiqSerializer, data: bytes) -> TaskiqMessage:
    """Decode bytes with ``serializer``; `MessageDecodeError` when they are not a message."""
    try:
        decoded = serializer.loadb(data)
    except SerializationError as exc:
        raise MessageDecodeError(reason=str(exc)) from exc
    return message_from_dict(decoded)


def decoded_copy(serializer: TaskiqSerializer, message: TaskiqMessage) -> TaskiqMessage | None:
    """What `decode_message` would give for the encoded ``message``, where that is certain.

    Certain only with the default `JSONSerializer` and plain data (see `round_trip_copy`). A
    message with no labels and no arguments comes back itself: decoding would give it as it is.
    """
    if type(serializer) is not JSONSerializer:
        return None
    task_id, task_name = message.task_id, message.task_name
    labels, args, kwargs = message.labels, message.args, message.kwargs
    if not (
        type(task_id) is str
        and type(task_name) is str
        and task_id  # decoding rejects an empty one: let it
        and task_name
        and task_id.isascii()
        and task_name.isascii()
        and type(labels) is dict
        and type(args) is list
        and type(kwargs) is dict
    ):
        return None
    if not (labels or args or kwargs):  # a copy: 4% of a no-op task's send, run and read
        return message
    # empty ones, the usual labels and often the arguments, need no look
    labels = round_trip_copy(labels) if labels else {}
    args = round_trip_copy(args) if args else []
    kwargs = round_trip_copy(kwargs) if kwargs else {}
    if labels is UNCERTAIN or args is UNCERTAIN or kwargs is UNCERTAIN:
        return None
    return TaskiqMessage(task_id, task_name, labels, args, kwargs)


def _codes_its_own_way(formatter: TaskiqFormatter, base: type[TaskiqFormatter]) -> bool:
    """Whether ``formatter``'s class overrides ``base``'s `dumps` or `loads`."""
    kind = type(formatter)
    return kind.dumps is not base.dumps or kind.loads is not base.loads


class SerializerFormatter(TaskiqFormatter):
    """Encodes messages as plain dicts with a given serializer."""

    def __init__(self, serializer: TaskiqSerializer) -> None:
        """Use ``serializer`` for the message bytes."""
        self.serializer = serializer

    def dumps(self, message: TaskiqMessage) -> BrokerMessage:
        """Encode ``message``; `SerializationError` when an argument cannot be encoded."""
        return encode_message(self.serializer, message)

    def loads(self, message: bytes) -> TaskiqMessage:
        """Decode bytes into a message; `MessageDecodeError` when they are not one."""
        return decode_message(self.serializer, message)

    def decoded_copy(self, message: TaskiqMessage) -> TaskiqMessage | None:
        """What `loads` would give for the encoded ``message``, where that is certain.

        None in a subclass that encodes or decodes in a way of its own.
        """
        if type(self) is not SerializerFormatter and _codes_its_own_way(self, SerializerFormatter):
            return None
        return decoded_copy(self.serializer, message)


class JSONFormatter(SerializerFormatter):
    """Encodes messages as JSON, whatever serializer the broker has."""

    def __init__(self) -> None:
        """Create a JSON formatter."""
        super().__init__(JSONSerializer())


class ProxyFormatter(TaskiqFormatter):
    """The default formatter: uses the broker's current serializer (see `with_serializer`)."""

    def __init__(self, broker: AsyncBroker) -> None:
        """Follow ``broker.serializer``."""
        self.broker = broker

    def dumps(self, message: TaskiqMessage) -> BrokerMessage:
        """Encode ``message`` with the broker's serializer."""
        return encode_message(self.broker.serializer, message)

    def loads(self, message: bytes) -> TaskiqMessage:
        """Decode bytes with the broker's serializer."""
        return decode_message(self.broker.serializer, message)

    def decoded_copy(self, message: TaskiqMessage) -> TaskiqMessage | None:
        """What `loads` would give for the encoded ``message``, where that is certain.

        None in a subclass that encodes or decodes in a way of its own.
        """
        if type(self) is not ProxyFormatter and _codes_its_own_way(self, ProxyFormatter):
            return None
        return decoded_copy(self.broker.serializer, message)
