"""Every ```python block of docs/*.md runs here, so the documentation cannot drift from the code.

Convention:

- Each block runs alone, as a module of its own: a fresh namespace registered in
  ``sys.modules`` under a distinct name (``docs_<page>_<index>``, which is also the block's
  ``__name__`` and so the module part of its default task names).
- If, once executed, the block defines a coroutine function ``main``, the test runs
  ``asyncio.run(main())``. Anything the block raises (a failed ``assert`` included) fails it.
- Every block checks what it shows: it contains an ``assert`` or a ``print(``.
- The only ways out are a ```python title="..." block (a fragment that cannot run alone) or a
  fence of another language.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
#: Seconds a block's ``main()`` may take before the test fails instead of hanging.
BLOCK_TIMEOUT_S = 60

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str
    index: int
    line: int  # 1-based line of the block's first code line
    info: str
    code: str

    @property
    def language(self) -> str:
        words = self.info.strip().lstrip("{").split()
        return words[0].lstrip(".").lower() if words else ""

    @property
    def runs(self) -> bool:
        return self.language in ("python", "py") and "title=" not in self.info

    @property
    def module_name(self) -> str:
        return f"docs_{Path(self.page).stem.replace('-', '_')}_{self.index}"


def fenced_blocks(page: Path) -> list[Block]:
    """Return the fenced blocks of ``page`` in order (indented ones dedented)."""
    blocks: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
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
        blocks.append(
            Block(page.name, len(blocks), i + 2, opening["info"], textwrap.dedent("\n".join(body)))
        )
        i = j + 1
    return blocks


def runnable_blocks() -> list[Block]:
    return [
        block for page in sorted(DOCS.glob("*.md")) for block in fenced_blocks(page) if block.runs
    ]


BLOCKS = runnable_blocks()


def test_the_docs_have_examples_to_run() -> None:
    pages = {block.page for block in BLOCKS}
    assert len(BLOCKS) >= 20, f"only {len(BLOCKS)} python blocks found under {DOCS}"
    assert "index.md" in pages


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.page}-{b.index}" for b in BLOCKS])
def test_docs_example_runs(block: Block) -> None:
    assert "assert " in block.code or "print(" in block.code, (
        f"{block.page}, line {block.line}: an example must assert or print what it shows"
    )
    # Leading blank lines make tracebacks point at the right line of the page.
    source = "\n" * (block.line - 1) + block.code
    code = compile(source, f"docs/{block.page}", "exec")
    module = types.ModuleType(block.module_name)
    module.__file__ = f"docs/{block.page}"
    sys.modules[block.module_name] = module
    try:
        exec(code, module.__dict__)
        main = module.__dict__.get("main")
        if inspect.iscoroutinefunction(main):
            asyncio.run(asyncio.wait_for(main(), BLOCK_TIMEOUT_S))
    finally:
        del sys.modules[block.module_name]
