"""Importing the command line's targets, and a bad target's one-line error with status 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from taskq import InMemoryBroker, TaskiqError
from taskq.cli.targets import TargetError, import_broker, import_module, import_object

SUPPORT_DIR = Path(__file__).resolve().parent / "cli_support"
if str(SUPPORT_DIR) not in sys.path:
    sys.path.insert(0, str(SUPPORT_DIR))

from worker_run import PATIENCE_S, worker_environment  # noqa: E402


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of importable modules, with unique names for this test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "cli_app_ok.py").write_text(
        textwrap.dedent(
            """
            from taskq import InMemoryBroker

            broker = InMemoryBroker()
            holder = type("Holder", (), {"broker": broker})
            answer = 42
            """
        )
    )
    (tmp_path / "cli_app_boom.py").write_text("raise RuntimeError('the\\nconfig is missing')\n")
    (tmp_path / "cli_app_needs.py").write_text("import cli_app_not_installed\n")
    (tmp_path / "cli_app_syntax.py").write_text("def broken(:\n")
    return tmp_path


def test_a_broker_target(project: Path) -> None:
    broker = import_broker("cli_app_ok:broker")
    assert isinstance(broker, InMemoryBroker)
    assert import_broker("cli_app_ok:holder.broker") is broker
    assert import_object("cli_app_ok:answer") == 42


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("cli_app_ok", "'cli_app_ok' is not a target: write module:attribute"),
        ("cli_app_ok:", "is not a target"),
        (":broker", "is not a target"),
        ("cli_app_ok:missing", "'cli_app_ok:missing': module 'cli_app_ok' has no attribute"),
        ("cli_app_ok:holder.nothing", "has no attribute 'holder.nothing'"),
        ("cli_app_ok:answer", "'cli_app_ok:answer' is an object of type int, not an AsyncBroker"),
        ("cli_app_absent:broker", "no module named 'cli_app_absent': check the spelling"),
        ("cli_app_ok.sub:broker", "no module named 'cli_app_ok.sub'"),
        ("cli_app_boom:broker", "importing 'cli_app_boom' failed: RuntimeError: the config is"),
        ("cli_app_needs:broker", "failed: ModuleNotFoundError: No module named 'cli_app_not_inst"),
        ("cli_app_syntax:broker", "importing 'cli_app_syntax' failed: SyntaxError"),
    ],
)
def test_bad_targets(project: Path, target: str, message: str) -> None:
    with pytest.raises(TargetError) as error:
        import_broker(target)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_broker_of_another_library_is_named_with_the_import_to_change(
    project: Path,
) -> None:
    # a stand-in for taskiq (the module names are what the message is built from)
    (project / "taskiq_standin").mkdir()
    (project / "taskiq_standin" / "__init__.py").write_text(
        "class AsyncBroker: ...\nclass InMemoryBroker(AsyncBroker): ...\n"
    )
    (project / "cli_app_foreign.py").write_text(
        "from taskiq_standin import InMemoryBroker\nbroker = InMemoryBroker()\n"
    )
    with pytest.raises(TargetError) as error:
        import_broker("cli_app_foreign:broker")
    assert str(error.value) == (
        "'cli_app_foreign:broker' is a taskiq_standin broker "
        "(taskiq_standin.InMemoryBroker); taskq needs its own: use a taskq broker instead "
        "(`from taskq import ...` or a taskq_* package)"
    )


def test_a_taskiq_broker_says_to_import_from_taskq(project: Path) -> None:
    pytest.importorskip("taskiq")
    (project / "cli_app_taskiq.py").write_text(
        "from taskiq import InMemoryBroker\nbroker = InMemoryBroker()\n"
    )
    with pytest.raises(TargetError) as error:
        import_broker("cli_app_taskiq:broker")
    assert str(error.value) == (
        "'cli_app_taskiq:broker' is a taskiq broker "
        "(taskiq.brokers.inmemory_broker.InMemoryBroker); taskq needs its own: "
        "change `from taskiq import ...` to `from taskq import ...`"
    )


def test_a_task_module_that_cannot_be_imported(project: Path) -> None:
    import_module("cli_app_ok")
    with pytest.raises(TargetError, match="no module named 'cli_app_absent'"):
        import_module("cli_app_absent")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["spool_app:missing"], "'spool_app:missing': module 'spool_app' has no attribute"),
        (["no_such_app:broker"], "no module named 'no_such_app'"),
        (["spool_app:SPOOL"], "is an object of type PosixPath, not an AsyncBroker"),
        (["spool_app:broker", "no_such_tasks"], "no module named 'no_such_tasks'"),
    ],
)
def test_a_bad_target_exits_2_with_one_line_on_stderr(
    tmp_path: Path, args: list[str], message: str
) -> None:
    if sys.platform == "win32" and "SPOOL" in args[0]:
        pytest.skip("the path type is another one on Windows")
    completed = subprocess.run(
        [sys.executable, "-m", "taskq.cli", "worker", *args],
        cwd=tmp_path,
        env=worker_environment(tmp_path / "spool"),
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("taskq worker: error: ")
    assert message in lines[0]


def test_target_errors_are_taskq_errors() -> None:
    assert issubclass(TargetError, TaskiqError)
