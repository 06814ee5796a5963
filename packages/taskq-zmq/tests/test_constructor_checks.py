"""`ZeroMQBroker` refuses a prefetch that is not a whole number of messages in range."""

from __future__ import annotations

import math
from typing import Any

import pytest

from taskq_zmq import ZeroMQBroker, protocol


@pytest.mark.parametrize("value", [math.inf, math.nan, 0, -1, 1.5, protocol.MAX_CREDIT + 1])
def test_prefetch_is_an_integer_in_range(value: Any) -> None:
    with pytest.raises(
        ValueError, match=rf"^prefetch must be an integer from 1 to {protocol.MAX_CREDIT}, got "
    ):
        ZeroMQBroker(prefetch=value)
