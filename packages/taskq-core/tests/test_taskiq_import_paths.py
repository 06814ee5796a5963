"""taskiq's import paths under ``taskq``: each name is the one real definition."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import taskq
import taskq.progress
import taskq.scheduled_task
import taskq.shared_broker
import taskq_inmemory
import taskq_scheduler
import taskq_zmq
from taskq.created_schedule import CreatedSchedule
from taskq.gather import gather
from taskq.serializers import CBORSerializer, JSONSerializer, MSGPackSerializer, ORJSONSerializer

#: taskiq's path (with ``taskq`` for ``taskiq``) -> its names -> taskq's definition.
PATHS: dict[str, dict[str, object]] = {
    "taskq.brokers.inmemory_broker": {
        "InMemoryBroker": taskq_inmemory.InMemoryBroker,
        "InmemoryResultBackend": taskq_inmemory.InmemoryResultBackend,
    },
    "taskq.brokers.shared_broker": {
        "AsyncSharedBroker": taskq.shared_broker.AsyncSharedBroker,
        "async_shared_broker": taskq.async_shared_broker,
        "shared_task": taskq.shared_broker.shared_task,
    },
    "taskq.brokers.zmq_broker": {"ZeroMQBroker": taskq_zmq.ZeroMQBroker},
    "taskq.schedule_sources": {"LabelScheduleSource": taskq_scheduler.LabelScheduleSource},
    "taskq.schedule_sources.label_based": {
        "LabelScheduleSource": taskq_scheduler.LabelScheduleSource
    },
    "taskq.scheduler.scheduler": {"TaskiqScheduler": taskq_scheduler.TaskiqScheduler},
    "taskq.scheduler.scheduled_task": {
        "ScheduledTask": taskq.ScheduledTask,
        "CronSpec": taskq.CronSpec,
    },
    "taskq.scheduler.created_schedule": {"CreatedSchedule": CreatedSchedule},
    "taskq.api": {
        "run_receiver_task": importlib.import_module("taskq.api.receiver").run_receiver_task,
        "run_scheduler_task": taskq_scheduler.run_scheduler_task,
    },
    "taskq.api.scheduler": {"run_scheduler_task": taskq_scheduler.run_scheduler_task},
    "taskq.funcs": {"gather": gather},
    "taskq.depends.progress_tracker": {
        "ProgressTracker": taskq.progress.ProgressTracker,
        "TaskProgress": taskq.progress.TaskProgress,
        "TaskState": taskq.progress.TaskState,
    },
    "taskq.result_backends.dummy": {"DummyResultBackend": taskq.DummyResultBackend},
    "taskq.abc.broker": {"AckableMessage": taskq.AckableMessage, "AsyncBroker": taskq.AsyncBroker},
    "taskq.serializers.json_serializer": {"JSONSerializer": JSONSerializer},
    "taskq.serializers.msgpack_serializer": {"MSGPackSerializer": MSGPackSerializer},
    "taskq.serializers.cbor_serializer": {"CBORSerializer": CBORSerializer},
    "taskq.serializers.orjson_serializer": {"ORJSONSerializer": ORJSONSerializer},
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_each_name_of_each_path_is_the_real_definition(path):
    module = importlib.import_module(path)
    for name, definition in PATHS[path].items():
        assert getattr(module, name) is definition, f"{path}.{name}"
        namespace: dict[str, object] = {}
        exec(f"from {path} import {name}", namespace)  # the form users write
        assert namespace[name] is definition


def test_importing_the_paths_imports_no_sibling_package():
    code = (
        "import sys, importlib\n"
        f"for path in {sorted(PATHS)!r}: importlib.import_module(path)\n"
        "print(sorted(m for m in sys.modules if m.startswith('taskq_')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("path", "name", "distribution"),
    [
        ("taskq.brokers.inmemory_broker", "InMemoryBroker", "taskq-inmemory"),
        ("taskq.schedule_sources", "LabelScheduleSource", "taskq-scheduler"),
        ("taskq.scheduler.scheduler", "TaskiqScheduler", "taskq-scheduler"),
        ("taskq.api", "run_scheduler_task", "taskq-scheduler"),
    ],
)
def test_a_missing_sibling_names_the_distribution_to_install(monkeypatch, path, name, distribution):
    sibling = "taskq_inmemory" if distribution == "taskq-inmemory" else "taskq_scheduler"
    monkeypatch.setitem(sys.modules, sibling, None)  # as if not installed
    module = importlib.import_module(path)
    with pytest.raises(ImportError, match=f"pip install {distribution}"):
        getattr(module, name)


def test_an_unknown_name_is_an_attribute_error():
    module = importlib.import_module("taskq.brokers.inmemory_broker")
    with pytest.raises(AttributeError, match="Nothing"):
        module.Nothing  # noqa: B018


@pytest.mark.parametrize("path", sorted(PATHS))
def test_the_paths_have_every_public_name_taskiq_has_there(path):
    taskiq_path = "taskiq" + path.removeprefix("taskq")
    pytest.importorskip("taskiq")
    reference = importlib.import_module(taskiq_path)
    names = getattr(reference, "__all__", None) or [
        name
        for name, value in vars(reference).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == reference.__name__
        and not isinstance(value, type(sys))
    ]
    ours = importlib.import_module(path)
    missing = [name for name in names if not hasattr(ours, name)]
    assert missing == [] or (path in KNOWN_GAPS and set(missing) == KNOWN_GAPS[path])


#: Names taskiq has under a path that taskq does not (see docs/migrating.md).
KNOWN_GAPS = {"taskq.brokers.shared_broker": {"SharedDecoratedTask"}}
