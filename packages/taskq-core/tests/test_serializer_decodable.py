"""What a serializer encodes, its own decoding takes back: a worker never gets bytes it rejects.

A message the worker cannot decode carries no task id it can store a failure under: the
sender would wait for a result in vain. So what decodes differently is decoded all the same,
and what cannot be decoded is refused when it is sent.
"""

from __future__ import annotations

from typing import Any

import pytest

from taskq.exceptions import SerializationError
from taskq.serializers import CBORSerializer, MSGPackSerializer
from taskq_inmemory import InMemoryBroker

#: The deepest nesting of containers cbor2's decoder takes in a message of ours.
MAX_DEPTH = 400


def nested(levels: int) -> list[Any]:
    """A list holding a list... ``levels`` lists deep in all."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_msgpack_decodes_a_map_whose_keys_were_tuples():
    serializer = MSGPackSerializer()
    value = {(1, 2): "a", "b": [1, [2, {(3,): [4, (5,)]}]]}
    assert serializer.loadb(serializer.dumpb(value)) == {
        (1, 2): "a",
        "b": [1, [2, {(3,): [4, [5]]}]],
    }


async def test_a_msgpack_task_with_a_tuple_keyed_argument_runs():
    broker = InMemoryBroker().with_serializer(MSGPackSerializer())

    @broker.task
    async def keys(mapping: dict[Any, str]) -> list[Any]:
        return sorted(mapping)

    async with broker:
        task = await keys.kiq({(1, 2): "a", (0,): "b"})
        result = await task.wait_result(timeout=30)
    assert result.return_value == [(0,), (1, 2)]


def test_cbor_takes_back_the_deepest_nesting_it_encodes():
    serializer = CBORSerializer()
    assert serializer.loadb(serializer.dumpb(nested(MAX_DEPTH))) == nested(MAX_DEPTH)
    assert serializer.loadb(serializer.dumpb({"k": nested(MAX_DEPTH - 1)})) is not None


@pytest.mark.parametrize("value", [nested(MAX_DEPTH + 1), {"k": nested(MAX_DEPTH)}, nested(5000)])
def test_cbor_refuses_a_nesting_its_decoder_would_reject(value):
    with pytest.raises(SerializationError, match="nested more than"):
        CBORSerializer().dumpb(value)


def test_cbor_with_value_sharing_keeps_a_cycle_in_a_long_message():
    serializer = CBORSerializer(value_sharing=True)
    cycle: list[Any] = ["x" * 2 * MAX_DEPTH]
    cycle.append(cycle)
    decoded = serializer.loadb(serializer.dumpb({"args": [cycle]}))
    assert decoded["args"][0][1] is decoded["args"][0]


async def test_a_cbor_kiq_of_too_deep_an_argument_fails_at_once():
    broker = InMemoryBroker().with_serializer(CBORSerializer())

    @broker.task
    async def echo(value: Any) -> Any:
        return value

    async with broker:
        with pytest.raises(SerializationError):
            await echo.kiq(nested(MAX_DEPTH))
        assert (await (await echo.kiq([1])).wait_result(timeout=30)).return_value == [1]
