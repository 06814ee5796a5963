"""`InTurnBackoff`: messages taken together run in turn unless first messages keep waiting."""

from __future__ import annotations

from taskq.receiver.in_turn import MAX_MESSAGES_APART, InTurnBackoff


def apart_before_in_turn(backoff: InTurnBackoff) -> int:
    """How many takes run apart before one runs in turn again."""
    count = 0
    while not backoff.in_turn():
        count += 1
    return count


def test_in_turn_until_a_first_message_waits_then_apart_for_longer_each_time():
    backoff = InTurnBackoff()
    assert apart_before_in_turn(backoff) == 0

    spans = []
    for _ in range(15):
        backoff.first_waited()
        spans.append(apart_before_in_turn(backoff))

    assert spans[:4] == [1, 2, 4, 8]
    assert max(spans) == MAX_MESSAGES_APART == spans[-1]


def test_a_message_run_in_turn_ends_the_backoff():
    backoff = InTurnBackoff()
    for _ in range(5):
        backoff.first_waited()
        apart_before_in_turn(backoff)

    backoff.ran_in_turn()
    backoff.first_waited()

    assert apart_before_in_turn(backoff) == 1
