"""The docs' tables of constructor arguments name each argument there is, with its default.

A table (``| argument | default | meaning |``) lists the arguments of one class; every row must
name a parameter of the class, and every parameter (but those the page explains in prose)
must have a row. A default written as a literal (`30`, `"taskq"`, `None`, `True`) must be the
parameter's default (a parameter defaulting to None may state the value None stands for).
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from taskq import Receiver
from taskq_amqp import AmqpBroker
from taskq_inmemory import InMemoryBroker
from taskq_redis import RedisStreamBroker
from taskq_result_backends import RedisResultBackend, SQLiteResultBackend
from taskq_zmq import ZeroMQBroker

ROOT = Path(__file__).resolve().parents[1]
HEADER = "| argument | default | meaning |"
#: (page, which of its argument tables, the class, parameters the page explains elsewhere).
TABLES: list[tuple[str, int, Any, set[str]]] = [
    ("docs/brokers.md", 0, InMemoryBroker, {"result_backend", "task_id_generator"}),
    ("docs/receiver.md", 0, Receiver, {"broker", "max_async_tasks", "max_prefetch"}),
    ("docs/redis.md", 0, RedisStreamBroker, {"task_id_generator"}),
    ("docs/amqp.md", 0, AmqpBroker, {"result_backend", "task_id_generator"}),
    ("docs/zmq.md", 0, ZeroMQBroker, set()),
    ("docs/result-backends.md", 0, SQLiteResultBackend, set()),
    ("docs/result-backends.md", 1, RedisResultBackend, set()),
]
_NAME = re.compile(r"^`(\*\*)?([a-z_]+)`$")


def argument_rows(page: str, index: int) -> dict[str, str]:
    """The rows of the page's ``index``-th argument table: name -> default cell."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    start = [n for n, line in enumerate(lines) if line.strip() == HEADER][index]
    rows: dict[str, str] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        name_cell, default_cell, *_ = (cell.strip() for cell in line.strip("|").split("|"))
        match = _NAME.match(name_cell)
        assert match, f"{page}: {name_cell!r} is not an argument name"
        rows[match.group(2)] = default_cell
    return rows


def literal(cell: str) -> object:
    """The value a default cell writes as a Python literal, or ``...`` for words."""
    text = cell.split(" ")[0].strip("`")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return ...


@pytest.mark.parametrize(("page", "index", "cls", "elsewhere"), TABLES)
def test_the_table_names_every_argument_with_its_default(
    page: str, index: int, cls: Any, elsewhere: set[str]
) -> None:
    parameters = dict(inspect.signature(cls.__init__).parameters)
    parameters.pop("self")
    rows = argument_rows(page, index)
    assert set(rows) == set(parameters) - elsewhere
    for name, cell in rows.items():
        default = parameters[name].default
        stated = literal(cell)
        if stated is ... or default is inspect.Parameter.empty:
            continue
        if default is None and stated is not None:
            continue  # None stands for a computed default, which the table gives
        assert stated == default, f"{page}: {name} is {default!r}, the table says {cell}"
