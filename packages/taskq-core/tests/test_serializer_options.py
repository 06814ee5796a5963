"""Serializer options taskiq code passes, with taskiq's effect; msgpack keeps datetimes."""

from __future__ import annotations

import datetime as dt
import importlib
from decimal import Decimal
from typing import Any

import cbor2
import orjson
import pytest

from taskq.serializers import CBORSerializer, JSONSerializer, MSGPackSerializer, ORJSONSerializer

UTC = dt.timezone.utc
AWARE = dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))


def as_text(value: Any) -> str:
    return f"<{value}>"


def test_json_ensure_ascii_escapes_non_ascii_characters():
    assert JSONSerializer(ensure_ascii=True).dumpb({"k": "é"}) == b'{"k":"\\u00e9"}'
    assert JSONSerializer().dumpb({"k": "é"}) == '{"k":"é"}'.encode()
    assert JSONSerializer(ensure_ascii=True).loadb(b'{"k":"\\u00e9"}') == {"k": "é"}


def test_json_default_replaces_the_plain_data_conversion():
    assert JSONSerializer(default=as_text).loadb(
        JSONSerializer(default=as_text).dumpb([Decimal("1.5")])
    ) == ["<1.5>"]
    assert JSONSerializer().loadb(JSONSerializer().dumpb([Decimal("1.5")])) == ["1.5"]


def test_orjson_option_and_default_are_orjsons():
    serializer = ORJSONSerializer(option=orjson.OPT_SORT_KEYS, default=as_text)
    assert serializer.dumpb({"b": 1, "a": Decimal("2")}) == b'{"a":"<2>","b":1}'
    assert ORJSONSerializer().dumpb({1: "x"}) == b'{"1":"x"}'


def test_msgpack_round_trips_an_aware_datetime_as_the_same_instant_in_utc():
    serializer = MSGPackSerializer()
    decoded = serializer.loadb(serializer.dumpb({"at": AWARE}))
    assert decoded == {"at": AWARE}
    assert decoded["at"].tzinfo == UTC


def test_msgpack_options_are_msgpacks():
    assert MSGPackSerializer(use_single_float=True).dumpb(1.5) == b"\xca?\xc0\x00\x00"
    assert (
        MSGPackSerializer(use_bin_type=False).loadb(
            MSGPackSerializer(use_bin_type=False).dumpb(b"x")
        )
        == "x"
    )
    as_string = MSGPackSerializer(datetime=False)
    assert as_string.loadb(as_string.dumpb(AWARE)) == "2024-01-02T03:04:05.123456+02:00"
    assert (
        MSGPackSerializer(default=as_text).loadb(
            MSGPackSerializer(default=as_text).dumpb(Decimal("1"))
        )
        == "<1>"
    )


def test_cbor_options_are_cbor2s_with_taskiqs_defaults():
    serializer = CBORSerializer()
    assert serializer.loadb(serializer.dumpb(AWARE)) == AWARE
    assert serializer.dumpb(AWARE)[:1] == b"\xc1"  # tag 1: an epoch timestamp
    naive = CBORSerializer(timezone=UTC)
    assert naive.loadb(naive.dumpb(dt.datetime(2024, 1, 2))) == dt.datetime(2024, 1, 2, tzinfo=UTC)
    canonical = CBORSerializer(canonical=True, string_referencing=False)
    assert canonical.dumpb({"b": 1, "a": 2}) == cbor2.dumps({"a": 2, "b": 1}, canonical=True)
    hooked = CBORSerializer(string_referencing=False, object_hook=lambda *args: "rebuilt")
    assert hooked.loadb(hooked.dumpb({"b": 1, "a": 2})) == "rebuilt"


#: (taskq serializer, taskiq module, options) decoded alike by both libraries.
REFERENCE_CASES = [
    (JSONSerializer, "json_serializer", {"ensure_ascii": True}),
    (ORJSONSerializer, "orjson_serializer", {"option": orjson.OPT_SORT_KEYS}),
    (MSGPackSerializer, "msgpack_serializer", {}),
    (MSGPackSerializer, "msgpack_serializer", {"use_single_float": True}),
    (CBORSerializer, "cbor_serializer", {}),
]


@pytest.mark.parametrize(("ours", "module", "options"), REFERENCE_CASES)
def test_each_option_has_taskiqs_effect(ours, module, options):
    pytest.importorskip("taskiq")
    reference_module = importlib.import_module(f"taskiq.serializers.{module}")
    reference = getattr(reference_module, ours.__name__)(**options)
    value = {"text": "é", "n": 1.5, "list": [1, "x"], "bytes": "b"}
    if ours is not JSONSerializer and ours is not ORJSONSerializer:
        value["at"] = AWARE
    taskq_serializer = ours(**options)
    expected = reference.loadb(reference.dumpb(value))
    assert reference.loadb(taskq_serializer.dumpb(value)) == expected
    assert taskq_serializer.loadb(reference.dumpb(value)) == expected
    assert taskq_serializer.loadb(taskq_serializer.dumpb(value)) == expected
    assert taskq_serializer.dumpb(value).isascii() == reference.dumpb(value).isascii()
