"""Names ``from taskq import ...`` resolves: core's own, and those packages announce."""

from __future__ import annotations

import json
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
