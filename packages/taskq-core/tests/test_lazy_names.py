"""Names ``from taskq import ...`` resolves: core's own, and those packages announce."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

import taskq
from taskq import _lazy


def announce(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setitem(_lazy.announced(), name, EntryPoint(name, value, _lazy.ENTRY_POINT_GROUP))


def test_a_name_an_installed_package_announces_resolves_to_its_object(monkeypatch):
    announce(monkeypatch, "PluginThing", "json:dumps")
    try:
        assert taskq.PluginThing is json.dumps
    finally:
        vars(taskq).pop("PluginThing", None)


def test_the_siblings_names_come_from_their_announcements():
    announced = _lazy.announced()
    for name, distribution in _lazy.INSTALL_HINTS.items():
        if name in announced:
            assert announced[name].dist is not None
            assert announced[name].dist.name == distribution, name


def test_core_names_no_sibling_module():
    source = _lazy.__file__
    with open(source, encoding="utf-8") as file:
        assert "taskq_" not in file.read()


def test_a_sibling_name_without_its_package_names_the_distribution(monkeypatch):
    monkeypatch.setattr(_lazy, "announced", dict)
    with pytest.raises(ImportError, match="pip install taskq-zmq"):
        _lazy.load("ZeroMQBroker")


def test_announced_metadata_whose_module_is_gone_names_the_distribution(monkeypatch):
    announce(monkeypatch, "ZeroMQBroker", "taskq_gone_for_good:ZeroMQBroker")
    with pytest.raises(ImportError, match="pip install taskq-zmq"):
        _lazy.load("ZeroMQBroker")


def test_a_name_nobody_announces_is_an_attribute_error(monkeypatch):
    with pytest.raises(AttributeError, match="NoSuchThing"):
        taskq.NoSuchThing  # noqa: B018


def test_importing_taskq_loads_neither_the_optional_serializers_nor_multiprocessing():
    code = (
        "import sys, taskq, taskq.broker\n"
        "print(sorted(m for m in sys.modules if m.startswith(('taskq.serializers.', "
        "'multiprocessing'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(
        ["taskq.serializers._plain", "taskq.serializers.json", "taskq.serializers.json_round_trip"]
    )


def test_every_serializer_name_resolves_from_its_package():
    from taskq import serializers
    from taskq.serializers.pickle import PickleSerializer

    assert serializers.PickleSerializer is PickleSerializer
    assert set(serializers.__all__) <= set(dir(serializers))
    for name in serializers.__all__:
        assert getattr(serializers, name).__name__ == name
    with pytest.raises(AttributeError, match="NoSuchSerializer"):
        _ = serializers.NoSuchSerializer
