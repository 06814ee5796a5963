"""What the commands print of a message or a store: control characters shown, never sent."""

from __future__ import annotations

from taskq.abc.dead_letters import DeadLetter
from taskq.cli import dlq
from taskq.cli.terminal import printable
from taskq.message import TaskiqMessage
from taskq_inmemory import InMemoryBroker


def test_printable_shows_each_control_character_as_its_escape() -> None:
    assert printable("a\x1b[2Jb\n\tc\x9bd\x7f") == "a\\x1b[2Jb\\n\\tc\\x9bd\\x7f"
    assert printable("plain text, é, ✓") == "plain text, é, ✓"


def test_dlq_list_and_show_print_a_hostile_message_as_escapes() -> None:
    broker = InMemoryBroker()
    message = TaskiqMessage(
        task_id="t1", task_name="app:\x1b]0;pwned\x07", labels={}, args=[], kwargs={}
    )
    letter = DeadLetter("1-0", broker.formatter.dumps(message).message, "bad\x1b[2J", None, 1)
    summary = dlq._summary(broker, letter)
    details = dlq._details(broker, letter)
    for printed in (summary, details):
        assert "\x1b" not in printed
        assert "\x07" not in printed
    assert "app:\\x1b]0;pwned\\x07[t1]  bad\\x1b[2J" in summary
    assert "task:        app:\\x1b]0;pwned\\x07" in details
