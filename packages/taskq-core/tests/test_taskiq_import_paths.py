"""taskiq's import paths under ``taskq``: each name is the one real definition."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

#: Where each name is defined: module, attribute.
INMEMORY = "taskq_inmemory"
SCHEDULER = "taskq_scheduler"

#: taskiq's path (with ``taskq`` for ``taskiq``) -> its names -> where taskq defines them.
PATHS: dict[str, dict[str, tuple[str, str]]] = {
    "taskq.brokers.inmemory_broker": {
        "InMemoryBroker": (INMEMORY, "InMemoryBroker"),
        "InmemoryResultBackend": (INMEMORY, "InmemoryResultBackend"),
    },
    "taskq.brokers.shared_broker": {
        "AsyncSharedBroker": ("taskq.shared_broker", "AsyncSharedBroker"),
        "async_shared_broker": ("taskq.shared_broker", "async_shared_broker"),
        "shared_task": ("taskq.shared_broker", "shared_task"),
    },
    "taskq.brokers.zmq_broker": {"ZeroMQBroker": ("taskq_zmq", "ZeroMQBroker")},
    "taskq.schedule_sources": {"LabelScheduleSource": (SCHEDULER, "LabelScheduleSource")},
    "taskq.schedule_sources.label_based": {
        "LabelScheduleSource": (SCHEDULER, "LabelScheduleSource")
    },
    "taskq.scheduler.scheduler": {"TaskiqScheduler": (SCHEDULER, "TaskiqScheduler")},
    "taskq.scheduler.scheduled_task": {
        "ScheduledTask": ("taskq.scheduled_task", "ScheduledTask"),
        "CronSpec": ("taskq.scheduled_task", "CronSpec"),
    },
    "taskq.scheduler.created_schedule": {
        "CreatedSchedule": ("taskq.created_schedule", "CreatedSchedule")
    },
    "taskq.api": {
        "run_receiver_task": ("taskq.api.receiver", "run_receiver_task"),
        "run_scheduler_task": (SCHEDULER, "run_scheduler_task"),
    },
    "taskq.api.scheduler": {"run_scheduler_task": (SCHEDULER, "run_scheduler_task")},
    "taskq.funcs": {"gather": ("taskq.gather", "gather")},
    "taskq.depends.progress_tracker": {
        "ProgressTracker": ("taskq.progress", "ProgressTracker"),
        "TaskProgress": ("taskq.progress", "TaskProgress"),
        "TaskState": ("taskq.progress", "TaskState"),
    },
    "taskq.result_backends.dummy": {
        "DummyResultBackend": ("taskq.result_backends", "DummyResultBackend")
    },
    "taskq.abc": {
        "AsyncBroker": ("taskq", "AsyncBroker"),
        "AsyncResultBackend": ("taskq", "AsyncResultBackend"),
    },
    "taskq.middlewares": {
        "SimpleRetryMiddleware": ("taskq_middlewares", "SimpleRetryMiddleware"),
        "SmartRetryMiddleware": ("taskq_middlewares", "SmartRetryMiddleware"),
        "PrometheusMiddleware": ("taskq_middlewares", "PrometheusMiddleware"),
    },
    "taskq.abc.broker": {
        "AckableMessage": ("taskq.acks", "AckableMessage"),
        "AsyncBroker": ("taskq", "AsyncBroker"),
    },
    "taskq.serializers.json_serializer": {
        "JSONSerializer": ("taskq.serializers", "JSONSerializer")
    },
    "taskq.serializers.msgpack_serializer": {
        "MSGPackSerializer": ("taskq.serializers", "MSGPackSerializer")
    },
    "taskq.serializers.cbor_serializer": {
        "CBORSerializer": ("taskq.serializers", "CBORSerializer")
    },
    "taskq.serializers.orjson_serializer": {
        "ORJSONSerializer": ("taskq.serializers", "ORJSONSerializer")
    },
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_each_name_of_each_path_is_the_real_definition(path):
    module = importlib.import_module(path)
    for name, (defining_module, attribute) in PATHS[path].items():
        # a sibling package may be absent where only core is installed
        definition = getattr(pytest.importorskip(defining_module), attribute)
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
    exported = getattr(ours, "__all__", None) or vars(ours)  # loads no sibling package
    missing = [name for name in names if name not in exported]
    assert missing == [] or (path in KNOWN_GAPS and set(missing) == KNOWN_GAPS[path])


#: Names taskiq has under a path that taskq does not (see docs/migrating.md).
KNOWN_GAPS = {
    "taskq.brokers.shared_broker": {"SharedDecoratedTask"},
    "taskq.middlewares": {"TaskiqAdminMiddleware"},
}
