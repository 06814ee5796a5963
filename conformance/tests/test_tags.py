"""Tags on the broker checks' messages: which check sent a message, and the report of the others."""

from __future__ import annotations

from taskq_conformance.tags import EARLIER_CHECK, EARLIER_RUN, UNTAGGED, RunTags


def test_a_check_knows_its_own_messages_wherever_the_tag_is():
    tags = RunTags()
    tags.begin("suite_broker.py::test_a")
    assert tags.is_mine(tags.tag(b"7"))
    assert tags.is_mine(b"\x00\x00 head " + tags.current + b" tail \x00\x00")
    assert tags.body(tags.tag(b"7")) == b"7"
    tags.begin("suite_broker.py::test_b")
    assert not tags.is_mine(b"7")
    assert tags.current == b"tqc:%s:2:" % tags.nonce.encode()


def test_a_message_not_sent_by_the_check_is_told_by_where_it_comes_from():
    earlier, tags = RunTags(), RunTags()
    earlier.begin("suite_broker.py::test_a")
    tags.begin("suite_broker.py::test_a")
    first = tags.tag(b"1")
    for n in range(9):  # a check of number 10 is not taken for check 1
        tags.begin(f"suite_broker.py::test_{n}")
    assert not tags.is_mine(first)
    assert tags.origin(first) == (EARLIER_CHECK, "suite_broker.py::test_a")
    assert tags.origin(earlier.tag(b"1")) == (EARLIER_RUN, earlier.nonce)
    assert tags.origin(b"1") == (UNTAGGED, "")


def test_what_a_check_set_aside_ends_its_failure_and_the_run_reports_it_all():
    earlier, tags = RunTags(), RunTags()
    earlier.begin("suite_broker.py::test_a")
    tags.begin("suite_broker.py::test_a")
    left = tags.tag(b"left")
    tags.record(left)  # its own: not set aside
    assert tags.note() == ""
    tags.begin("suite_broker.py::test_b")
    for data in (b"7", left, earlier.tag(b"x"), b"8"):
        tags.record(data)
    assert tags.note() == (
        f" (4 message(s) this check did not send were received meanwhile and set aside, the "
        f"first {UNTAGGED}: b'7')"
    )
    tags.begin("suite_broker.py::test_c")
    assert tags.note() == ""
    assert tags.report()[1:] == [
        f"  2 {UNTAGGED}; the first received by suite_broker.py::test_b: b'7'",
        f"  1 {EARLIER_CHECK} (suite_broker.py::test_a); the first received by "
        f"suite_broker.py::test_b: {left!r}",
        f"  1 {EARLIER_RUN} ({earlier.nonce}); the first received by suite_broker.py::test_b: "
        f"{earlier.tag(b'x')!r}",
    ]
    assert tags.as_json() == {UNTAGGED: 2, EARLIER_CHECK: 1, EARLIER_RUN: 1}
