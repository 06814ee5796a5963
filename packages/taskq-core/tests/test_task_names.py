"""A script's tasks get the names a worker importing the script gives them (real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SUPPORT_DIR = Path(__file__).resolve().parent / "cli_support"
if str(SUPPORT_DIR) not in sys.path:
    sys.path.insert(0, str(SUPPORT_DIR))

from worker_run import PATIENCE_S, eventually  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")

# A client script as taskiq's getting-started page has it: the broker, the tasks, and a
# main part sending them. Run as a script it prints its task names; in a worker it writes
# them to the file TASK_NAMES_FILE names.
SCRIPT = textwrap.dedent(
    """
    import json
    import os
    from pathlib import Path

    from taskq import InMemoryBroker, TaskiqEvents

    broker = InMemoryBroker()


    @broker.task
    async def add(a: int, b: int) -> int:
        return a + b


    @broker.on_event(TaskiqEvents.WORKER_STARTUP)
    def report(state) -> None:
        names = sorted(broker.get_all_tasks())
        Path(os.environ["TASK_NAMES_FILE"]).write_text(json.dumps(names))


    if __name__ == "__main__":
        print(json.dumps(sorted(broker.get_all_tasks())))
    """
)


def names_in_a_worker(cwd: Path, target: str, names_file: Path) -> list[str]:
    env = {**os.environ, "TASK_NAMES_FILE": str(names_file)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "taskq", "worker", target, "--workers", "1"],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        text = eventually(
            lambda: names_file.is_file() and names_file.read_text(), what=f"{names_file}"
        )
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(PATIENCE_S)
    return list(json.loads(text))


@pytest.mark.parametrize(
    ("path", "client", "target", "name"),
    [
        ("jobs.py", ["jobs.py"], "jobs:broker", "jobs:add"),
        ("app/jobs.py", ["app/jobs.py"], "app.jobs:broker", "app.jobs:add"),
        ("app/jobs.py", ["-m", "app.jobs"], "app.jobs:broker", "app.jobs:add"),
    ],
)
def test_a_script_and_a_worker_importing_it_agree_on_task_names(
    tmp_path: Path, path: str, client: list[str], target: str, name: str
) -> None:
    project = tmp_path / "project"
    (project / path).parent.mkdir(parents=True, exist_ok=True)
    (project / path).write_text(SCRIPT)
    printed = subprocess.run(
        [sys.executable, *client],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        check=True,
    ).stdout
    in_client = json.loads(printed)
    in_worker = names_in_a_worker(project, target, tmp_path / "names.json")
    assert in_client == in_worker == [name]


def test_a_script_outside_the_working_directory_is_named_after_its_file(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "jobs.py").write_text(SCRIPT)
    (tmp_path / "here").mkdir()
    printed = subprocess.run(
        [sys.executable, "../elsewhere/jobs.py"],
        cwd=tmp_path / "here",
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        check=True,
    ).stdout
    assert json.loads(printed) == ["jobs:add"]


def test_code_given_to_python_c_keeps_main(tmp_path: Path) -> None:
    code = SCRIPT.replace('if __name__ == "__main__":', "if True:")
    printed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        check=True,
    ).stdout
    assert json.loads(printed) == ["__main__:add"]


def test_lambdas_get_unique_names() -> None:
    from taskq import InMemoryBroker

    broker = InMemoryBroker()
    first = broker.register_task(lambda: 1)
    second = broker.register_task(lambda: 2)
    assert first.task_name != second.task_name
    assert first.task_name.startswith(f"{__name__}:lambda_")
    assert broker.find_task(first.task_name) is first
