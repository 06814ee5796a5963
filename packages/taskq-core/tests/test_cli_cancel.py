"""``taskq cancel``: records cancellations in the broker's store; says what is wrong otherwise."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from taskq import Cancellation
from taskq.cli.cancel import main
from taskq.cli.main import installed_subcommands

APP = """
from taskq import AsyncBroker, InMemoryCancellationStore
from taskq.exceptions import TaskiqError
from taskq_inmemory import InMemoryBroker


class Unreachable(InMemoryCancellationStore):
    async def cancel(self, task_id, reason=""):
        raise TaskiqError("the store does not answer")


class Encoding(InMemoryCancellationStore):
    async def cancel(self, task_id, reason=""):  # as a store writing to a file or a socket
        await super().cancel(task_id.encode().decode(), reason.encode().decode())


broker = InMemoryBroker()
encoding = InMemoryBroker().with_cancellation(Encoding())
plain = InMemoryBroker().with_cancellation(None)
failing = InMemoryBroker().with_cancellation(Unreachable())
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    name = f"cli_cancel_app_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(APP))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def test_core_registers_the_cancel_subcommand() -> None:
    assert installed_subcommands()["cancel"].value == "taskq.cli.cancel:main"


def test_it_records_each_cancellation_with_the_reason(app, capsys) -> None:
    assert main([f"{app}:broker", "t1", "t2", "--reason", "duplicate order"]) == 0
    assert capsys.readouterr().out.splitlines() == ["cancelled t1", "cancelled t2"]
    store = sys.modules[app].broker.cancellation
    found = asyncio.run(store.cancellation("t2"))
    assert found == Cancellation("t2", "duplicate order")


def test_command_line_bytes_that_are_not_utf8_reach_the_store_replaced(app, capsys) -> None:
    # Python gives such bytes of argv as lone surrogates, which no store could encode
    task_id, reason = b"t\xff".decode(errors="surrogateescape"), "r\udcfe"
    assert main([f"{app}:encoding", task_id, "--reason", reason]) == 0
    store = sys.modules[app].encoding.cancellation
    assert asyncio.run(store.cancellation("t\ufffd")) == Cancellation("t\ufffd", "r\ufffd")


def test_a_broker_without_a_store_is_a_usage_error(app, capsys) -> None:
    assert main([f"{app}:plain", "t1"]) == 2
    assert "with_cancellation" in capsys.readouterr().err


def test_a_target_that_is_not_a_broker_is_a_usage_error(app, capsys) -> None:
    assert main([f"{app}:Unreachable", "t1"]) == 2
    assert "not an AsyncBroker" in capsys.readouterr().err


def test_a_store_that_fails_ends_with_status_1(app, capsys) -> None:
    assert main([f"{app}:failing", "t1"]) == 1
    assert "the store does not answer" in capsys.readouterr().err


def test_task_ids_are_required(capsys) -> None:
    assert main(["pkg:broker"]) == 2
    assert "TASK_ID" in capsys.readouterr().err
