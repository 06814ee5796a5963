"""`taskq dlq`'s options are checked before the broker is imported."""

from __future__ import annotations

import pytest

from taskq.cli.dlq import main


@pytest.mark.parametrize("count", ["-5", "0", "many", "1.5"])
def test_a_count_that_is_not_a_positive_integer_is_one_usage_error(
    count: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "no_such_module:broker", "--count", count]) == 2
    lines = capsys.readouterr().err.splitlines()
    errors = [line for line in lines if "error" in line]
    assert errors == [
        f"taskq dlq list: error: argument --count: expected an integer >= 1, got {count!r}"
    ]
