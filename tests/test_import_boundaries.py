"""Who may import what, checked on the sources (parsed, never imported).

- `taskq.abc` is the bottom layer: at import time its modules import only other contracts and
  plain data, and so do those plain-data modules. A module ``__getattr__`` may name a moved
  class for compatibility (``from taskq.abc.broker import AsyncBroker``): it runs on use only.
- Core imports no sibling package at import time (names of siblings resolve lazily).
- A sibling package (and the conformance suite) imports from core only the declared public
  modules (`PUBLIC_CORE`, `taskq.toolkit` among them), and no ``_private`` module of another
  package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CORE_SOURCES = REPO_ROOT / "packages" / "taskq-core" / "src"
SOURCE_ROOTS = [*sorted((REPO_ROOT / "packages").glob("*/src")), REPO_ROOT / "conformance" / "src"]

#: Modules the contracts may import at import time: contracts and plain data
#: (``name.*``: the package and its submodules).
CONTRACT_LAYER = frozenset(
    {
        "taskq.abc.*",
        "taskq.capabilities",
        "taskq.checks",  # checks of plain numbers, importing nothing of taskq
        "taskq.exceptions",
        "taskq.inspection",
        "taskq.message",
        "taskq.model_methods",
        "taskq.scheduled_task",
        "taskq.task_events",
    }
)

#: Core modules other packages may import: the public API and the declared toolkit.
PUBLIC_CORE = frozenset(
    {
        "taskq",
        "taskq.abc.*",
        "taskq.acks",
        "taskq.capabilities",
        "taskq.event_stores.*",
        "taskq.control.*",
        "taskq.events",
        "taskq.exceptions",
        "taskq.inspection",
        "taskq.labels",
        "taskq.message",
        "taskq.progress",
        "taskq.receiver",
        "taskq.result",
        "taskq.scheduled_task",
        "taskq.serializers.*",
        "taskq.task_events",
        "taskq.testing",
        "taskq.toolkit",
    }
)


@dataclass(frozen=True)
class Import:
    """One import statement of a source file."""

    module: str
    line: int
    at_import_time: bool  # not under ``if TYPE_CHECKING`` and not inside a function
    in_compat_getattr: bool  # inside a module-level ``__getattr__``


def imports_of(path: Path) -> list[Import]:
    """Return the imports of the module at ``path``; ``from a import b`` gives ``a`` and ``a.b``."""
    found: list[Import] = []

    def visit(node: ast.AST, runtime: bool, in_function: bool, in_getattr: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for statement in child.orelse:
                    visit(statement, runtime, in_function, in_getattr)
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                getattr_hook = child.name == "__getattr__" and not in_function
                visit(child, runtime, True, in_getattr or getattr_hook)
                continue
            for name in _imported_names(child):
                found.append(Import(name, child.lineno, runtime and not in_function, in_getattr))
            visit(child, runtime, in_function, in_getattr)

    visit(ast.parse(path.read_text(encoding="utf-8")), True, False, False)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        yield node.module
        yield from (f"{node.module}.{alias.name}" for alias in node.names)


def module_name(path: Path, source_root: Path) -> str:
    """Return the dotted name of the module at ``path`` under ``source_root``."""
    parts = list(path.relative_to(source_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_path(name: str) -> Path | None:
    """Return the source file of the repository's module ``name``, or None if it is not one."""
    for root in SOURCE_ROOTS:
        base = root.joinpath(*name.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _in_layer(name: str, layer: frozenset[str]) -> bool:
    return any(
        name == entry.removesuffix(".*")
        or (entry.endswith(".*") and name.startswith(entry.removesuffix("*")))
        for entry in layer
    )


# -- the contracts are the bottom layer -------------------------------------------------------


CONTRACTS = sorted((CORE_SOURCES / "taskq" / "abc").glob("*.py"))


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda path: path.stem)
def test_contracts_import_only_contracts_and_plain_data(path: Path) -> None:
    concrete = [
        f"line {found.line}: {found.module}"
        for found in imports_of(path)
        if _is_concrete(found.module) and not found.in_compat_getattr
    ]
    assert not concrete, (
        f"{path.name} is a contract but imports concrete modules: {concrete}; contracts "
        "import only contracts and plain data (move the machinery out of taskq.abc)"
    )


@pytest.mark.parametrize("name", sorted(CONTRACT_LAYER - {"taskq.abc.*"}))
def test_plain_data_the_contracts_use_imports_nothing_concrete(name: str) -> None:
    path = module_path(name)
    assert path is not None, f"{name} is listed in the contract layer but does not exist"
    concrete = [
        f"line {found.line}: {found.module}"
        for found in imports_of(path)
        if found.at_import_time and _is_concrete(found.module)
    ]
    assert not concrete, f"{name} is plain data but imports concrete modules: {concrete}"


def _is_concrete(imported: str) -> bool:
    return (
        imported.split(".")[0] == "taskq"
        and module_path(imported) is not None  # a module, not a name imported from one
        and not _in_layer(imported, CONTRACT_LAYER)
    )


def test_abc_broker_names_the_one_broker_base_class() -> None:
    import taskq
    import taskq.abc
    from taskq.abc.broker import AsyncBroker
    from taskq.broker import AsyncBroker as Defined

    assert AsyncBroker is Defined is taskq.AsyncBroker is taskq.abc.AsyncBroker


@pytest.mark.parametrize(
    "path", sorted((CORE_SOURCES / "taskq").rglob("*.py")), ids=lambda p: p.name
)
def test_core_imports_no_sibling_at_import_time(path: Path) -> None:
    siblings = [
        f"line {found.line}: {found.module}"
        for found in imports_of(path)
        if found.at_import_time and found.module.startswith("taskq_")
    ]
    assert not siblings, f"{path.name} imports sibling packages at import time: {siblings}"


# -- siblings use the declared seams ----------------------------------------------------------


def _sibling_sources() -> list[tuple[Path, Path]]:
    return [
        (root, path)
        for root in SOURCE_ROOTS
        if root != CORE_SOURCES
        for path in sorted(root.rglob("*.py"))
    ]


@pytest.mark.parametrize(
    ("root", "path"),
    _sibling_sources(),
    ids=[str(path.relative_to(root)) for root, path in _sibling_sources()],
)
def test_siblings_import_only_declared_seams(root: Path, path: Path) -> None:
    own_package = module_name(path, root).split(".")[0]
    wrong = [
        f"line {found.line}: {found.module}"
        for found in imports_of(path)
        if _crosses_a_seam(found.module, own_package)
    ]
    assert not wrong, (
        f"{path.relative_to(REPO_ROOT)} imports modules outside another package's public "
        f"API: {wrong}; import from core's public modules (taskq, taskq.abc, ...) or "
        "taskq.toolkit"
    )


def _crosses_a_seam(imported: str, own_package: str) -> bool:
    package = imported.split(".")[0]
    if package == own_package or not package.startswith("taskq"):
        return False
    if module_path(imported) is None:  # a name imported from a module, not a module
        return False
    if any(part.startswith("_") for part in imported.split(".")[1:]):
        return True
    return package == "taskq" and not _in_layer(imported, PUBLIC_CORE)
