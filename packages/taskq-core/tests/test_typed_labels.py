"""A taskiq client's message, with string labels and ``labels_types``, has typed labels."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskq import JSONFormatter, MessageDecodeError, Receiver, TaskiqMessage, TaskiqMiddleware
from taskq.formatters import message_to_dict

#: What taskiq 0.13's kicker and JSON formatter send for these labels.
TASKIQ_CLIENT_MESSAGE = {
    "task_id": "t1",
    "task_name": "app:job",
    "labels": {
        "delay": "5",
        "timeout": "1.5",
        "retry_on_error": "True",
        "queue": "fast",
        "token": "AAE=",
        "anything": "[1, 2]",
        "not_typed": "7",
    },
    "labels_types": {
        "delay": 2,
        "timeout": 4,
        "retry_on_error": 5,
        "queue": 3,
        "token": 6,
        "anything": 1,
        "absent": 2,
    },
    "args": [1],
    "kwargs": {},
}
TYPED_LABELS = {
    "delay": 5,
    "timeout": 1.5,
    "retry_on_error": True,
    "queue": "fast",
    "token": b"\x00\x01",
    "anything": "[1, 2]",
    "not_typed": "7",
}


def test_a_taskiq_clients_labels_are_parsed_to_their_types():
    message = JSONFormatter().loads(json.dumps(TASKIQ_CLIENT_MESSAGE).encode())
    assert message.labels == TYPED_LABELS
    assert type(message.labels["delay"]) is int
    assert (message.task_name, message.args) == ("app:job", [1])


@pytest.mark.parametrize(
    "labels_types",
    [{"delay": 99}, {"delay": 4, "timeout": 2}, {"token": 6, "delay": "x"}, ["delay"]],
)
def test_labels_that_do_not_parse_are_a_decode_error_with_the_task_id(labels_types):
    data = dict(TASKIQ_CLIENT_MESSAGE, labels={"delay": "soon", "timeout": "1.5", "token": "*"})
    data["labels_types"] = labels_types
    with pytest.raises(MessageDecodeError) as raised:
        JSONFormatter().loads(json.dumps(data).encode())
    assert raised.value.task_id == "t1"


async def test_a_worker_runs_a_taskiq_clients_message_with_typed_labels(recording_broker):
    seen: dict[str, Any] = {}

    class Recording(TaskiqMiddleware):
        def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
            seen.update(message.labels)
            return message

    recording_broker.add_middlewares(Recording())

    @recording_broker.task("app:job")
    async def job(value: int) -> int:
        return value

    data = dict(TASKIQ_CLIENT_MESSAGE, labels={"timeout": "5", "delay": "0"})
    data["labels_types"] = {"timeout": 4, "delay": 2}
    await Receiver(recording_broker).callback(json.dumps(data).encode())
    result = await recording_broker.result_backend.get_result("t1")
    assert (result.is_err, result.return_value) == (False, 1)
    assert seen == {"timeout": 5.0, "delay": 0}


def test_taskq_messages_are_read_by_taskiq_with_the_same_labels():
    taskiq_message = pytest.importorskip("taskiq.message")
    labels = {"delay": 5, "timeout": 1.5, "retry_on_error": True, "queue": "fast"}
    ours = TaskiqMessage("t1", "app:job", labels, [1], {})
    wire = json.dumps(message_to_dict(ours)).encode()
    theirs = taskiq_message.TaskiqMessage.model_validate_json(wire)
    theirs.parse_labels()
    assert theirs.labels == labels


def test_taskiq_client_messages_decode_to_the_labels_taskiq_gives():
    kicker = pytest.importorskip("taskiq.kicker")
    formatter = pytest.importorskip("taskiq.formatters.json_formatter").JSONFormatter()
    taskiq = pytest.importorskip("taskiq")
    labels = dict(TYPED_LABELS)
    del labels["anything"]
    prepared = kicker.AsyncKicker("app:job", taskiq.InMemoryBroker(), labels)._prepare_message(1)
    wire = formatter.dumps(prepared).message
    prepared.parse_labels()
    assert JSONFormatter().loads(wire).labels == prepared.labels == labels
