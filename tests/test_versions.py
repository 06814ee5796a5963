"""Repository-level consistency checks over every distribution of the monorepo.

Every ``packages/*/pyproject.toml`` (and ``conformance/pyproject.toml`` when it exists) must:
share one version, pin sibling taskq distributions exactly (``==<that version>``), and ship
``src/<import name>/py.typed`` and a ``README.md``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parent.parent


def _project_files() -> list[Path]:
    files = sorted(REPO_ROOT.glob("packages/*/pyproject.toml"))
    conformance = REPO_ROOT / "conformance" / "pyproject.toml"
    if conformance.is_file():
        files.append(conformance)
    return files


PROJECT_FILES = _project_files()
PYPROJECTS: dict[Path, dict[str, Any]] = {
    path.parent: tomllib.loads(path.read_text(encoding="utf-8")) for path in PROJECT_FILES
}
IDS = [str(path.relative_to(REPO_ROOT)) for path in PYPROJECTS]


def _name(pyproject: dict[str, Any]) -> str:
    return canonicalize_name(pyproject["project"]["name"])


def _version(pyproject: dict[str, Any]) -> str:
    project = pyproject["project"]
    assert "version" in project, "the version must be static ([project] version = ...)"
    return str(project["version"])


def _import_names(pyproject: dict[str, Any]) -> list[str]:
    """Import packages of a distribution: the hatch wheel target, else the dist name."""
    targets = pyproject.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {})
    packages = targets.get("wheel", {}).get("packages")
    if packages:
        return [Path(p).name for p in packages]
    return [pyproject["project"]["name"].replace("-", "_")]


def _all_requirements(pyproject: dict[str, Any]) -> list[Requirement]:
    project = pyproject["project"]
    raw = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        raw.extend(extra)
    return [Requirement(r) for r in raw]


SIBLINGS = {_name(p) for p in PYPROJECTS.values()}


def test_packages_are_found() -> None:
    assert "taskq-core" in SIBLINGS
    assert "taskq-inmemory" in SIBLINGS


def test_all_packages_share_one_version() -> None:
    versions = {IDS[i]: _version(p) for i, p in enumerate(PYPROJECTS.values())}
    assert len(set(versions.values())) == 1, f"versions differ: {versions}"


@pytest.mark.parametrize("package_dir", list(PYPROJECTS), ids=IDS)
def test_sibling_dependencies_are_exact_pins(package_dir: Path) -> None:
    pyproject = PYPROJECTS[package_dir]
    version = _version(pyproject)
    for req in _all_requirements(pyproject):
        name = canonicalize_name(req.name)
        if not name.startswith("taskq"):
            continue
        assert name in SIBLINGS, f"{req}: no such distribution in this repository"
        assert str(req.specifier) == f"=={version}", f"{req}: must be pinned as =={version}"


@pytest.mark.parametrize("package_dir", list(PYPROJECTS), ids=IDS)
def test_package_has_readme_and_py_typed(package_dir: Path) -> None:
    assert (package_dir / "README.md").is_file(), f"{package_dir.name}: missing README.md"
    for import_name in _import_names(PYPROJECTS[package_dir]):
        marker = package_dir / "src" / import_name / "py.typed"
        assert marker.is_file(), f"missing {marker.relative_to(REPO_ROOT)}"


@pytest.mark.parametrize("package_dir", list(PYPROJECTS), ids=IDS)
def test_installed_metadata_matches(package_dir: Path) -> None:
    """An installed (editable) distribution must report the version of its pyproject.toml."""
    pyproject = PYPROJECTS[package_dir]
    try:
        installed = importlib.metadata.version(pyproject["project"]["name"])
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{pyproject['project']['name']} is not installed")
    assert installed == _version(pyproject), "stale install: reinstall the package"


def test_taskq_dunder_version() -> None:
    """``taskq.__version__``, when the package defines one, is the distribution's version."""
    if importlib.util.find_spec("taskq") is None:
        pytest.skip("taskq is not installed")
    taskq = importlib.import_module("taskq")
    if not hasattr(taskq, "__version__"):
        pytest.skip("taskq defines no __version__ (yet)")
    core = PYPROJECTS[REPO_ROOT / "packages" / "taskq-core"]
    assert taskq.__version__ == _version(core)
