"""Which files count as project code: `--fs-discover`'s task modules and `--reload`'s files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from taskq.cli.discovery import discover_modules, module_name, python_files
from taskq.cli.reload import ChangeWatcher


def touch(root: Path, *relative: str) -> None:
    for name in relative:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    touch(
        tmp_path,
        "tasks.py",
        "app/__init__.py",
        "app/tasks.py",
        "app/models.py",
        "app/jobs/tasks.py",
        "app/jobs/mytasks.py",
        "app/tasks.txt",
        "scripts/my-tool/tasks.py",  # not an importable name
        ".git/hooks/tasks.py",
        ".venv/lib/tasks.py",
        "env/lib/site-packages/pkg/tasks.py",
        "site-packages/pkg/tasks.py",
        "node_modules/pkg/tasks.py",
        "app/__pycache__/tasks.py",
    )
    (tmp_path / "env" / "pyvenv.cfg").touch()
    return tmp_path


def test_python_files_skip_what_is_not_project_code(project: Path) -> None:
    assert [path.as_posix() for path in python_files(project)] == [
        "tasks.py",
        "app/__init__.py",
        "app/models.py",
        "app/tasks.py",
        "app/jobs/mytasks.py",
        "app/jobs/tasks.py",
        "scripts/my-tool/tasks.py",
    ]


def test_the_default_pattern_finds_every_tasks_module(project: Path) -> None:
    assert discover_modules(project, ["**/tasks.py"]) == ["tasks", "app.tasks", "app.jobs.tasks"]


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["app/*.py"], ["app", "app.models", "app.tasks"]),
        (["app/**/*tasks.py"], ["app.tasks", "app.jobs.mytasks", "app.jobs.tasks"]),
        (["*/jobs/?ytasks.py"], ["app.jobs.mytasks"]),
        (
            ["app/models.py", "**/tasks.py", "app/tasks.py"],
            ["tasks", "app.models", "app.tasks", "app.jobs.tasks"],
        ),
        (["tasks.py"], ["tasks"]),
        (["nothing/*.py"], []),
    ],
)
def test_patterns(project: Path, patterns: list[str], expected: list[str]) -> None:
    assert sorted(discover_modules(project, patterns)) == sorted(expected)


def test_module_names() -> None:
    assert module_name(Path("a/b/c.py")) == "a.b.c"
    assert module_name(Path("a/__init__.py")) == "a"
    assert module_name(Path("__init__.py")) is None
    assert module_name(Path("my-tool/tasks.py")) is None


def test_a_path_that_is_no_module_name_is_skipped_with_a_warning(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert discover_modules(project, ["scripts/**"]) == []
    assert "Skipping scripts/my-tool/tasks.py" in caplog.text


def bump(path: Path, seconds: float = 2) -> None:
    later = time.time() + seconds
    os.utime(path, (later, later))


def test_the_watcher_notices_changed_added_and_removed_files(project: Path) -> None:
    watcher = ChangeWatcher(project, interval_s=0)
    assert watcher.changed() is None

    bump(project / "app" / "models.py")
    assert watcher.changed() == Path("app/models.py")
    assert watcher.changed() is None

    touch(project, "app/new.py")
    assert watcher.changed() == Path("app/new.py")

    (project / "tasks.py").unlink()
    assert watcher.changed() == Path("tasks.py")

    (project / "app" / "tasks.py").write_text("x = 1\n")  # same mtime is possible: size differs
    assert watcher.changed() == Path("app/tasks.py")


def test_the_watcher_ignores_what_is_not_project_code(project: Path) -> None:
    watcher = ChangeWatcher(project, interval_s=0)
    bump(project / ".venv" / "lib" / "tasks.py")
    touch(project, "node_modules/other.py", "app/notes.txt")
    assert watcher.changed() is None


def test_the_watcher_looks_at_most_every_interval(project: Path) -> None:
    watcher = ChangeWatcher(project, interval_s=60)
    bump(project / "app" / "models.py")
    assert watcher.changed() is None  # too soon
    assert 0 < watcher.seconds_to_next_look() <= 60
