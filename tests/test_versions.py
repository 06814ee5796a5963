"""Repository-level consistency checks over every distribution of the monorepo.

Every ``packages/*/pyproject.toml`` (and ``conformance/pyproject.toml`` when it exists) must:
share one version, pin sibling taskq distributions exactly (``==<that version>``), and ship
``src/<import name>/py.typed`` and a ``README.md``. These directories are also the one list
of packages: requirements-dev.txt, hatch.toml, tox.ini, the CI workflow, pytest's and mypy's
settings and core's lazy-name install hints must each name every package.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
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


# -- the package list: the package directories above are its one source; every other list of
# -- packages in the repository (requirements, hatch, tox, CI, pytest, mypy, lazy names) is
# -- checked against them here


def _dev_install(package_dir: Path) -> str:
    """How a development install names the package: its path with every extra it declares."""
    path = package_dir.relative_to(REPO_ROOT).as_posix()
    extras = sorted(PYPROJECTS[package_dir]["project"].get("optional-dependencies", {}))
    return f"{path}[{','.join(extras)}]" if extras else path


def _tox_factor(package_dir: Path) -> str:
    """The tox factor of a package's test envs: taskq-result-backends -> resultbackends."""
    return _name(PYPROJECTS[package_dir]).removeprefix("taskq-").replace("-", "")


def _normalized(install: str) -> str:
    """``path[b,a]`` as `_dev_install` writes it (extras sorted), ``{/}`` read as ``/``."""
    path, _, extras = install.replace("{tox_root}{/}", "").replace("{/}", "/").partition("[")
    extras = ",".join(sorted(extras.rstrip("]").split(","))) if extras else ""
    return f"{path}[{extras}]" if extras else path


DEV_INSTALLS = sorted(_dev_install(path) for path in PYPROJECTS)
TOX_INI = (REPO_ROOT / "tox.ini").read_text(encoding="utf-8")


def _tox_env_list() -> list[str]:
    """The env names of tox.ini's env_list, with ``{a,b}`` groups expanded."""
    lines = TOX_INI.partition("env_list =")[2].split("\n")
    names: list[str] = []
    for line in lines[1:]:
        if not line.startswith(" ") or not line.strip():
            break
        names.extend(_expand(line.strip()))
    return names


def _expand(pattern: str) -> list[str]:
    head, brace, rest = pattern.partition("{")
    if not brace:
        return [pattern]
    group, _, tail = rest.partition("}")
    return [name for part in group.split(",") for name in _expand(head + part + tail)]


def test_requirements_dev_installs_every_package_with_its_extras() -> None:
    lines = (REPO_ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    editable = sorted(_normalized(line[3:].strip()) for line in lines if line.startswith("-e "))
    assert editable == DEV_INSTALLS


def test_hatch_workspace_has_every_package_with_its_extras() -> None:
    hatch = tomllib.loads((REPO_ROOT / "hatch.toml").read_text(encoding="utf-8"))
    members = hatch["envs"]["default"]["workspace"]["members"]
    named = sorted(
        f"{m['path']}[{','.join(sorted(m['features']))}]" if m.get("features") else m["path"]
        for m in members
    )
    assert named == DEV_INSTALLS


@pytest.mark.parametrize("package_dir", list(PYPROJECTS), ids=IDS)
def test_tox_tests_every_package_on_every_python(package_dir: Path) -> None:
    envs = _tox_env_list()
    factor = _tox_factor(package_dir)
    for python in ("py310", "py311", "py312", "py313"):
        assert f"{python}-{factor}" in envs, f"tox.ini env_list lacks {python}-{factor}"
    tests = package_dir.relative_to(REPO_ROOT).as_posix().replace("/", "{/}") + "{/}tests"
    assert f"{factor}: pytest {tests}" in TOX_INI, f"no tox command runs {tests}"
    types_env = TOX_INI.partition("[testenv:types]")[2].partition("\n[")[0]
    installs = [_normalized(line.strip()[3:]) for line in types_env.splitlines() if "-e " in line]
    assert _dev_install(package_dir) in installs, "the types env must install it with its extras"


def test_ci_workflow_runs_every_tox_env() -> None:
    workflow = (REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    for env in _tox_env_list():
        python, _, factor = env.partition("-")
        if python in ("py310", "py311", "py312", "py313"):
            assert "${{ matrix.tox }}-" + factor in workflow, f"CI does not run *-{factor}"
        else:
            assert re.search(rf"[ ,]{re.escape(env)}(,|$)", workflow, re.M), f"CI lacks {env}"


def test_pytest_and_mypy_cover_every_package() -> None:
    tools = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    dirs = sorted(path.relative_to(REPO_ROOT).as_posix() for path in PYPROJECTS)
    assert sorted(tools["mypy"]["mypy_path"]) == sorted(f"{d}/src" for d in dirs)
    testpaths = tools["pytest"]["ini_options"]["testpaths"]
    assert sorted(p for p in testpaths if p != "tests") == sorted(f"{d}/tests" for d in dirs)


def test_the_install_hints_are_the_names_the_packages_announce() -> None:
    announced = {
        name: _name(pyproject)
        for pyproject in PYPROJECTS.values()
        for name in pyproject["project"].get("entry-points", {}).get("taskq.names", {})
    }
    lazy = importlib.import_module("taskq._lazy")
    assert announced == lazy.INSTALL_HINTS
