"""The default JSON serializer encodes a message the faster way to exactly the usual bytes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskq import TaskiqMessage
from taskq.formatters import encode_message, message_to_dict
from taskq.serializers import JSONSerializer

leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=6)
    | st.just(dt.date(2024, 5, 1))
    | st.just(object())
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3)
    ),
    max_leaves=8,
)
messages = st.builds(
    TaskiqMessage,
    st.text(min_size=1, max_size=8),
    st.text(min_size=1, max_size=8),
    st.dictionaries(st.text(max_size=4), values, max_size=3),
    st.lists(values, max_size=3),
    st.dictionaries(st.text(max_size=4), values, max_size=3),
)
serializers = st.sampled_from(
    [JSONSerializer(), JSONSerializer(ensure_ascii=True), JSONSerializer(default=repr)]
)


def outcome(encode: Any) -> bytes | tuple[type[BaseException], str]:
    try:
        return encode()  # type: ignore[no-any-return]
    except Exception as exc:
        return type(exc), str(exc)


@settings(max_examples=400)
@given(serializer=serializers, message=messages)
def test_a_message_encodes_to_the_bytes_or_the_error_of_its_wire_dict(serializer, message):
    expected = outcome(lambda: serializer.dumpb(message_to_dict(message)))

    assert outcome(lambda: encode_message(serializer, message).message) == expected


@pytest.mark.parametrize("serializer", [JSONSerializer(), JSONSerializer(ensure_ascii=True)])
def test_text_is_escaped_as_the_encoder_escapes_it(serializer):
    message = TaskiqMessage('id "1"\\', "t:é\n", {"a": "\x01"}, ["é"], {"k": "ü"})

    data = encode_message(serializer, message).message

    assert data == serializer.dumpb(message_to_dict(message))
    assert serializer.loadb(data) == message_to_dict(message)
