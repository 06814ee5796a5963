"""`decoded_copy`: what decoding would give, told without encoding, only where it is certain."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskq import JSONFormatter, TaskiqMessage
from taskq.exceptions import SerializationError
from taskq.formatters import SerializerFormatter
from taskq.serializers.json_round_trip import UNCERTAIN, round_trip_copy
from taskq.serializers.pickle import PickleSerializer

ascii_text = st.text(st.characters(max_codepoint=127), max_size=6)
plain_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)
    | st.floats()
    | ascii_text
)
odd_leaves = (
    st.text(max_size=4)
    | st.integers()
    | st.characters(codec="utf-8").map(lambda c: "\ud800" + c)  # a lone surrogate
    | st.just(object())
)
plain_values = st.recursive(
    plain_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ascii_text, inner, max_size=3),
    max_leaves=8,
)
any_values = st.recursive(
    plain_leaves | odd_leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3)
    ),
    max_leaves=8,
)
ids = st.text(st.characters(max_codepoint=127), min_size=1, max_size=6)


def same(a: Any, b: Any) -> bool:
    """Equal, with exact types at every level (1 == 1.0 == True is not enough here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def assert_decodes_to(copy: TaskiqMessage, message: TaskiqMessage) -> None:
    formatter = JSONFormatter()
    decoded = formatter.loads(formatter.dumps(message).message)
    for field in ("task_id", "task_name", "labels", "args", "kwargs"):
        assert same(getattr(copy, field), getattr(decoded, field)), field
    if not (message.labels or message.args or message.kwargs):
        return  # nothing in it: the message itself may serve (see the test below)
    assert copy.args is not message.args
    assert copy.kwargs is not message.kwargs
    assert copy.labels is not message.labels


@settings(max_examples=200, deadline=None)
@given(
    task_id=ids,
    task_name=ids,
    labels=st.dictionaries(ascii_text, plain_values, max_size=3),
    args=st.lists(plain_values, max_size=3),
    kwargs=st.dictionaries(ascii_text, plain_values, max_size=3),
)
def test_plain_data_is_copied_as_decoding_gives_it(task_id, task_name, labels, args, kwargs):
    message = TaskiqMessage(task_id, task_name, labels, args, kwargs)

    copy = JSONFormatter().decoded_copy(message)

    assert copy is not None
    assert_decodes_to(copy, message)


@settings(max_examples=300, deadline=None)
@given(
    task_id=ids | st.text(max_size=3) | st.integers(),
    task_name=ids | st.text(max_size=3),
    labels=st.dictionaries(st.text(max_size=3) | st.integers(), any_values, max_size=3),
    args=st.lists(any_values, max_size=3) | any_values,
    kwargs=st.dictionaries(st.text(max_size=3), any_values, max_size=3),
)
def test_any_copy_is_exactly_what_decoding_gives(task_id, task_name, labels, args, kwargs):
    message = TaskiqMessage(task_id, task_name, labels, args, kwargs)

    copy = JSONFormatter().decoded_copy(message)

    if copy is not None:  # else: encoded and decoded as always
        assert_decodes_to(copy, message)


def test_plain_messages_are_copied():
    message = TaskiqMessage("id", "mod:task", {"delay": 1.5}, [[1, "a"], None], {"k": {"x": True}})

    copy = JSONFormatter().decoded_copy(message)

    assert copy == message
    assert copy.args[0] is not message.args[0]
    assert copy.kwargs["k"] is not message.kwargs["k"]


def test_a_message_without_labels_or_arguments_comes_back_itself():
    message = TaskiqMessage("id", "mod:task")

    assert JSONFormatter().decoded_copy(message) is message
    assert JSONFormatter().decoded_copy(TaskiqMessage("é", "mod:task")) is None  # not certain


def test_what_encoding_could_fail_on_or_change_is_uncertain():
    for value in (object(), (1,), {1: 2}, "é", "\ud800", 2**64, float("nan")):
        message = TaskiqMessage("id", "mod:task", {}, [value], {})
        copy = JSONFormatter().decoded_copy(message)
        if copy is None:
            continue
        assert same(copy.args, [value])  # only nan is certain: JSON keeps it
    assert round_trip_copy(object()) is UNCERTAIN
    nested: list[Any] = []
    for _ in range(40):
        nested = [nested]
    assert round_trip_copy(nested) is UNCERTAIN  # deeper than the decoder is sure to take


def test_an_unencodable_message_is_never_copied():
    message = TaskiqMessage("id", "mod:task", {}, [object()], {})

    assert JSONFormatter().decoded_copy(message) is None
    with pytest.raises(SerializationError):
        JSONFormatter().dumps(message)


def test_other_serializers_are_never_sure():
    message = TaskiqMessage("id", "mod:task", {}, [1], {})

    assert SerializerFormatter(PickleSerializer()).decoded_copy(message) is None


def test_formatters_of_their_own_are_never_sure():
    class Tagging(JSONFormatter):
        def loads(self, message: bytes) -> TaskiqMessage:
            decoded = super().loads(message)
            decoded.labels["seen"] = True
            return decoded

    message = TaskiqMessage("id", "mod:task", {}, [1], {})

    assert JSONFormatter().decoded_copy(message) is not None
    assert Tagging().decoded_copy(message) is None
