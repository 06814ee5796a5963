"""Every ```python block of README.md and docs/*.md runs as a user would run it, as pasted.

Convention:

- Each block is written alone to a file in a fresh directory and run there with
  ``python <file>.py`` in a subprocess. It passes when the process exits with status 0 (a failed
  ``assert`` or any exception fails it).
- A block that defines ``async def main()`` also runs it, so that pasting it does something:
  it ends with ``asyncio.run(main())``, usually under ``if __name__ == "__main__":``.
- Every block checks what it shows: it contains an ``assert`` or a ``print(``.
- A comment at the end of a ``print(...)`` line states what it prints: ``print(total)  # 5``.
  The output must hold those lines, in that order; ``...`` in a comment stands for any text.
- A block that cannot run alone (a piece of a larger program) is marked with the line
  ``<!-- fragment -->`` (optionally ``<!-- fragment: why -->``) right before its fence: the
  comment does not show on the rendered page. Every other python block runs; a marker that
  is not followed by a python block fails the tests.
- Blocks that use Redis reach it where they say, ``127.0.0.1:6379``, each under key prefixes
  of its own. Without a Redis server there they are skipped, except with ``CI=true``.

The blocks run in parallel, a few at a time, as soon as the first of them is needed.
"""

from __future__ import annotations

import ast
import functools
import io
import os
import re
import socket
import subprocess
import sys
import textwrap
import tokenize
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Seconds one block may run before it is killed and fails.
BLOCK_TIMEOUT_S = 60
#: Where the blocks that use Redis say it is.
REDIS_ADDRESS = ("127.0.0.1", 6379)
#: Where the blocks that use RabbitMQ say it is.
AMQP_ADDRESS = ("127.0.0.1", 5672)
#: Blocks running at once: they mostly wait (imports, sleeps, Redis), so more than the cores.
PARALLEL_RUNS = max(4, 2 * (os.cpu_count() or 1))

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_FRAGMENT = re.compile(r"^\s*<!--\s*fragment\b.*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str  # path relative to the repository root
    index: int
    line: int  # 1-based line of the block's first code line
    info: str
    code: str
    fragment: bool  # marked `<!-- fragment -->`: not meant to run alone

    @property
    def language(self) -> str:
        words = self.info.strip().lstrip("{").split()
        return words[0].lstrip(".").lower() if words else ""

    @property
    def is_python(self) -> bool:
        return self.language in ("python", "py")

    @property
    def runs(self) -> bool:
        return self.is_python and not self.fragment

    @property
    def uses_redis(self) -> bool:
        return "taskq_redis" in self.code or "RedisResultBackend" in self.code

    @property
    def uses_amqp(self) -> bool:
        return "taskq_amqp" in self.code

    @property
    def file_name(self) -> str:
        return f"{Path(self.page).stem.lower().replace('-', '_')}_{self.index}.py"

    def __str__(self) -> str:
        return f"{self.page}, block at line {self.line}"


def fenced_blocks(text: str, page: str) -> list[Block]:
    """Return the fenced blocks of a Markdown page in order (indented ones dedented)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], opening["indent"]
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = _FENCE.match(lines[j])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        above = next((line for line in reversed(lines[:i]) if line.strip()), "")
        fragment = _FRAGMENT.match(above) is not None
        code = textwrap.dedent("\n".join(body)) + "\n"
        blocks.append(Block(page, len(blocks), i + 2, opening["info"], code, fragment))
        i = j + 1
    return blocks


def page_blocks(page: Path) -> list[Block]:
    return fenced_blocks(page.read_text(encoding="utf-8"), page.relative_to(ROOT).as_posix())


def fragment_markers(page: Path) -> list[int]:
    """Return the 1-based lines of the page's ``<!-- fragment -->`` markers."""
    lines = page.read_text(encoding="utf-8").splitlines()
    return [number for number, line in enumerate(lines, 1) if _FRAGMENT.match(line)]


def calls_main(tree: ast.Module) -> bool:
    """Whether the module runs ``main()``: ``asyncio.run(main())`` at top level or under an if."""
    statements = list(tree.body)
    for statement in tree.body:
        if isinstance(statement, ast.If):
            statements += statement.body
    for statement in statements:
        if (
            isinstance(statement, ast.Expr)
            and isinstance(call := statement.value, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "run"
            and call.args
            and isinstance(argument := call.args[0], ast.Call)
            and isinstance(argument.func, ast.Name)
            and argument.func.id == "main"
        ):
            return True
    return False


def stated_output(code: str) -> list[str]:
    """Return the outputs the block's ``print(...)  # output`` comments state, in order."""
    print_lines = {
        node.end_lineno
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "print"
    }
    return [
        token.string[1:].strip()
        for token in tokenize.generate_tokens(io.StringIO(code).readline)
        if token.type == tokenize.COMMENT and token.start[0] in print_lines
    ]


def matches(stated: str, line: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in stated.split("..."))
    return re.fullmatch(pattern, line.strip()) is not None


def redis_reachable() -> bool:
    return reachable(REDIS_ADDRESS)


@functools.cache
def reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except OSError:
        return False


BLOCKS = [block for page in PAGES for block in page_blocks(page) if block.is_python]
RUNNABLE = [block for block in BLOCKS if block.runs]


def test_the_docs_have_examples_to_run() -> None:
    pages = {block.page for block in RUNNABLE}
    assert len(RUNNABLE) >= 20, f"only {len(RUNNABLE)} python blocks found in {PAGES}"
    assert {"README.md", "docs/index.md"} <= pages


def test_every_fragment_marker_stands_right_before_a_python_block() -> None:
    for page in PAGES:
        fragments = [block.line - 1 for block in page_blocks(page) if block.fragment]
        markers = fragment_markers(page)
        assert len(markers) == len(fragments), (
            f"{page.relative_to(ROOT)}: fragment markers at lines {markers}, but only the "
            f"fences at lines {fragments} follow one (with nothing but blank lines between)"
        )
        for block in page_blocks(page):
            assert block.is_python or not block.fragment, (
                f"{block}: only ```python blocks can be fragments (a {block.language!r} block "
                "never runs)"
            )


def test_a_marked_block_is_a_fragment_and_others_run() -> None:
    page = textwrap.dedent(
        """\
        ```python
        print(1)  # 1
        ```

        <!-- fragment: the worker module of the example above -->

        ```python title="worker.py"
        broker = make_broker()
        ```

        ~~~py
        assert True
        ~~~
        """
    )
    blocks = fenced_blocks(page, "page.md")
    assert [(block.line, block.runs) for block in blocks] == [(2, True), (8, False), (12, True)]
    assert stated_output(blocks[0].code) == ["1"]


def test_stated_output_comes_from_print_lines_only() -> None:
    code = textwrap.dedent(
        """\
        total = 5  # not an output
        print(total)  # 5
        print(
            "a", "b"
        )  # a b
        """
    )
    assert stated_output(code) == ["5", "a b"]
    assert matches("b'{\"is_err\":false,...}'", 'b\'{"is_err":false,"x":1}\'')
    assert not matches("5", "50")


@dataclass(frozen=True)
class Run:
    """What running one block as a file gave."""

    returncode: int
    stdout: str
    stderr: str


def run_as_file(block: Block, directory: Path, env: dict[str, str]) -> Run:
    """Write the block to a file of its own and run it with ``python file.py`` there."""
    directory.mkdir(parents=True)
    (directory / block.file_name).write_text(block.code, encoding="utf-8")
    try:
        done = subprocess.run(
            [sys.executable, block.file_name],
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        output = [(stream or b"").decode(errors="replace") for stream in (exc.stdout, exc.stderr)]
        return Run(-1, output[0], output[1] + f"\n(killed after {BLOCK_TIMEOUT_S} s)")
    return Run(done.returncode, done.stdout, done.stderr)


def skip_reason(block: Block, has_redis: bool) -> str | None:
    if block.uses_redis and not has_redis:
        return "no Redis server at {}:{}".format(*REDIS_ADDRESS)
    if block.uses_amqp and not reachable(AMQP_ADDRESS):
        return "no RabbitMQ server at {}:{}".format(*AMQP_ADDRESS)
    return None


@pytest.fixture(scope="module")
def has_redis() -> bool:
    return redis_reachable()


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, has_redis: bool
) -> Iterator[dict[Block, Future[Run]]]:
    """Start every selected block at once, a few at a time; each test waits for its own."""
    selected: list[Block] = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.path == Path(__file__) and callspec is not None and "block" in callspec.params:
            selected.append(callspec.params["block"])
    started: dict[Block, Future[Run]] = {}
    with ThreadPoolExecutor(PARALLEL_RUNS, thread_name_prefix="docs-block") as pool:
        for block in selected:
            if skip_reason(block, has_redis) is None and block not in started:
                directory = tmp_path_factory.mktemp("block") / "run"
                # copied here: pytest writes os.environ while the pool's threads run, and a
                # thread copying it then fails; what a block puts in the temporary directory
                # stays in its own, pytest's
                env = {**os.environ, "TMPDIR": str(directory)}
                started[block] = pool.submit(run_as_file, block, directory, env)
        yield started
        for future in started.values():
            future.cancel()


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"{b.page}-{b.index}" for b in RUNNABLE])
def test_docs_example_runs_as_pasted(
    block: Block, runs: dict[Block, Future[Run]], has_redis: bool
) -> None:
    assert "assert " in block.code or "print(" in block.code, (
        f"{block}: an example must assert or print what it shows"
    )
    tree = ast.parse(block.code)
    defines_main = any(
        isinstance(node, ast.AsyncFunctionDef) and node.name == "main" for node in tree.body
    )
    assert not defines_main or calls_main(tree), (
        f"{block}: it defines `async def main()` but never runs it; end it with "
        '`if __name__ == "__main__":\\n    asyncio.run(main())`'
    )
    if (reason := skip_reason(block, has_redis)) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)

    run = runs[block].result()
    assert run.returncode == 0, (
        f"{block}: `python {block.file_name}` exited with status {run.returncode} "
        f"(line n of the file is line {block.line} + n - 1 of the page)\n"
        f"--- stdout\n{run.stdout}--- stderr\n{run.stderr}"
    )
    output = run.stdout.splitlines()
    position = 0
    for stated in stated_output(block.code):
        found = next((i for i in range(position, len(output)) if matches(stated, output[i])), None)
        assert found is not None, (
            f"{block}: a comment says it prints {stated!r}, but after what it printed before, "
            f"its output has no such line:\n{run.stdout}"
        )
        position = found + 1
