"""The packages as users get them: built into sdists and wheels, and installed from the wheels.

Every distribution is built with ``python -m build`` (hatchling), which builds the wheel from
the sdist, so a file the sdist lacks fails the build. Each sdist and wheel must hold what its
``pyproject.toml`` promises, and ``twine check`` must accept them.

Then only taskq-core, taskq-zmq and taskq-result-backends are installed, from those wheel files
(third-party dependencies from the package index), into a fresh virtual environment, and a task
goes across processes there, run from a directory outside the source tree: a ZeroMQ client
sends it to a worker process started with the installed ``taskq worker`` console script, and
reads its result back from SQLite. A module or a dependency missing from a wheel fails it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import venv
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from taskq.testing import free_port

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = [*sorted(ROOT.glob("packages/*/")), ROOT / "conformance"]
#: The pieces a ZeroMQ deployment with SQLite results needs, and nothing else.
ROUND_TRIP_DISTS = ["taskq-core", "taskq-zmq", "taskq-result-backends"]
BUILD_TIMEOUT_S = 120
INSTALL_TIMEOUT_S = 180
CLIENT_TIMEOUT_S = 120


def pyproject(package_dir: Path) -> dict[str, Any]:
    return tomllib.loads((package_dir / "pyproject.toml").read_text(encoding="utf-8"))


def import_packages(package_dir: Path) -> list[str]:
    """The source directories the wheel ships, relative to the package: ``src/taskq``, ..."""
    targets = pyproject(package_dir)["tool"]["hatch"]["build"]["targets"]
    return list(targets["wheel"]["packages"])


def source_files(package_dir: Path) -> list[PurePosixPath]:
    """The files of the package's import packages on disk (bytecode left out)."""
    files = []
    for package in import_packages(package_dir):
        for path in sorted((package_dir / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files.append(PurePosixPath(path.relative_to(package_dir).as_posix()))
    return files


@dataclass(frozen=True)
class Built:
    """One distribution's sdist and wheel."""

    name: str
    sdist: Path
    wheel: Path


def build(package_dir: Path, outdir: Path) -> Built:
    """Build the sdist, then the wheel from it, as a release does (the build backend from here)."""
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir)]
    done = subprocess.run(
        [*command, str(package_dir)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"building {package_dir.name} failed:\n{done.stdout}{done.stderr}"
    (sdist,) = outdir.glob("*.tar.gz")
    (wheel,) = outdir.glob("*.whl")
    return Built(pyproject(package_dir)["project"]["name"], sdist, wheel)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    out = tmp_path_factory.mktemp("dist")
    with ThreadPoolExecutor(4) as pool:
        builds = [pool.submit(build, d, out / d.name) for d in PACKAGE_DIRS]
        return {b.name: b for b in (future.result() for future in builds)}


def test_twine_accepts_every_sdist_and_wheel(built: dict[str, Built]) -> None:
    files = [str(path) for b in built.values() for path in (b.sdist, b.wheel)]
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def built_from(package_dir: Path, built: dict[str, Built]) -> Built:
    return built[pyproject(package_dir)["project"]["name"]]


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=[d.name for d in PACKAGE_DIRS])
def test_sdist_holds_the_sources_readme_and_license(
    package_dir: Path, built: dict[str, Built]
) -> None:
    sdist_path = built_from(package_dir, built).sdist
    readme = pyproject(package_dir)["project"]["readme"]
    wanted = [PurePosixPath(p) for p in ("pyproject.toml", readme, "LICENSE")]
    wanted += source_files(package_dir)
    assert any(f.name == "py.typed" for f in wanted)
    with tarfile.open(sdist_path) as sdist:
        # every member sits under the sdist's top directory, "<name>-<version>/"
        members = {PurePosixPath(*PurePosixPath(m.name).parts[1:]): m for m in sdist.getmembers()}
        missing = [str(f) for f in wanted if f not in members]
        assert not missing, f"{sdist_path.name} lacks {missing}"
        license_file = sdist.extractfile(members[PurePosixPath("LICENSE")])
        assert license_file is not None
        assert license_file.read() == (ROOT / "LICENSE").read_bytes()


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=[d.name for d in PACKAGE_DIRS])
def test_wheel_holds_the_modules_py_typed_and_license(
    package_dir: Path, built: dict[str, Built]
) -> None:
    wheel_path = built_from(package_dir, built).wheel
    # src/taskq/abc/__init__.py is taskq/abc/__init__.py in the wheel
    wanted = [
        PurePosixPath(PurePosixPath(package).name) / file.relative_to(package)
        for package in import_packages(package_dir)
        for file in source_files(package_dir)
        if file.is_relative_to(package)
    ]
    assert any(f.name == "py.typed" for f in wanted)
    with zipfile.ZipFile(wheel_path) as wheel:
        names = set(wheel.namelist())
        missing = [str(f) for f in wanted if str(f) not in names]
        assert not missing, f"{wheel_path.name} lacks {missing}"
        licenses = [n for n in names if ".dist-info/" in n and n.endswith("/LICENSE")]
        assert len(licenses) == 1, f"{wheel_path.name} should carry one LICENSE: {licenses}"
        assert wheel.read(licenses[0]) == (ROOT / "LICENSE").read_bytes()


APP = '''\
"""Tasks shared by the client and the worker: both import this module."""

import os
import sys

import taskq
import taskq_result_backends
import taskq_zmq
from taskq_result_backends import SQLiteResultBackend
from taskq_zmq import ZeroMQBroker

address = os.environ["ROUND_TRIP_ADDRESS"]
broker = ZeroMQBroker(zmq_pub_host=address, zmq_sub_host=address).with_result_backend(
    SQLiteResultBackend(os.environ["ROUND_TRIP_SQLITE"])
)


@broker.task
def where(a: int, b: int) -> dict:
    """A sync task: the sum, and where the process that ran it found taskq."""
    modules = [taskq.__file__, taskq_zmq.__file__, taskq_result_backends.__file__]
    return {"sum": a + b, "pid": os.getpid(), "prefix": sys.prefix, "modules": modules}
'''

CLIENT = '''\
"""Send one task to the worker process and print what came back, as JSON."""

import asyncio
import importlib.metadata
import json
import os
import sys

import taskq
from round_trip_app import broker, where


def installed() -> dict:
    found = {}
    for dist in importlib.metadata.distributions():
        if dist.metadata["Name"].startswith("taskq"):
            found[dist.metadata["Name"]] = json.loads(dist.read_text("direct_url.json") or "{}")
    return found


async def main() -> None:
    await broker.startup()
    task = await where.kiq(2, "3")
    result = await task.wait_result(timeout=60)
    await broker.shutdown()
    try:
        from taskq import InMemoryBroker  # noqa: F401 - not installed here
    except ImportError as exc:
        missing = str(exc)
    else:
        missing = ""
    client = {"pid": os.getpid(), "prefix": sys.prefix, "modules": [taskq.__file__]}
    print(json.dumps({
        "is_err": result.is_err,
        "error": repr(result.error),
        "worker": result.return_value,
        "client": client,
        "installed": installed(),
        "missing": missing,
    }))


asyncio.run(main())
'''


def free_address() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def user_environment(env_dir: Path, **variables: str) -> dict[str, str]:
    """A shell with the virtual environment activated and nothing pointing at the sources."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join([str(env_dir / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(env_dir)
    env["PYTHONNOUSERSITE"] = "1"
    return {**env, **variables}


@pytest.fixture
def worker_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


@pytest.mark.skipif(sys.platform == "win32", reason="taskq worker is made for POSIX systems")
# more than the suite's per-test timeout: the install may download from the package index
@pytest.mark.timeout(INSTALL_TIMEOUT_S + CLIENT_TIMEOUT_S + 60)
def test_core_zmq_and_result_backends_installed_from_wheels_run_a_task_across_processes(
    built: dict[str, Built],
    tmp_path: Path,
    worker_processes: list[subprocess.Popen[bytes]],
) -> None:
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    wheels = [str(built[name].wheel) for name in ROUND_TRIP_DISTS]
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    done = subprocess.run(
        [*install, "--disable-pip-version-check", "--prefer-binary", *wheels],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"pip install {' '.join(wheels)} failed:\n{done.stderr}"

    app_dir = tmp_path / "app"  # outside the source tree
    app_dir.mkdir()
    (app_dir / "round_trip_app.py").write_text(APP, encoding="utf-8")
    (app_dir / "client.py").write_text(CLIENT, encoding="utf-8")
    env = user_environment(
        env_dir,
        ROUND_TRIP_ADDRESS=free_address(),
        ROUND_TRIP_SQLITE=str(tmp_path / "results.sqlite3"),
    )
    worker_log = tmp_path / "worker.log"
    with worker_log.open("w") as log:
        worker = subprocess.Popen(
            [str(env_dir / "bin" / "taskq"), "worker", "round_trip_app:broker", "--workers", "1"],
            cwd=app_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    worker_processes.append(worker)
    try:
        client = subprocess.run(
            [str(python), "client.py"],
            cwd=app_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        worker_output = worker_log.read_text()
        print(f"taskq worker:\n{worker_output}")  # shown when the test fails
    assert client.returncode == 0, f"client:\n{client.stderr}\nworker:\n{worker_output}"
    assert worker.returncode == 0, worker_output

    report = json.loads(client.stdout)
    assert not report["is_err"], report["error"]
    ran = report["worker"]
    assert ran["sum"] == 5  # "3" was cast to int by the worker
    assert ran["pid"] != report["client"]["pid"]
    inside = Path(report["client"]["prefix"]).resolve()
    assert inside == env_dir.resolve() == Path(ran["prefix"]).resolve()
    for module in [*ran["modules"], *report["client"]["modules"]]:
        assert Path(module).resolve().is_relative_to(inside), f"{module} is not from the wheels"

    assert sorted(report["installed"]) == sorted(ROUND_TRIP_DISTS)
    for name, origin in report["installed"].items():
        assert origin.get("url", "").endswith(".whl"), f"{name} was not installed from its wheel"
    assert "pip install taskq-inmemory" in report["missing"]
