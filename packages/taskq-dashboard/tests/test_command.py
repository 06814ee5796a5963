"""``taskq dashboard`` as a user runs it: a process serving the pages over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskq.testing import eventually_blocking, free_port
from taskq_dashboard.cli import main, parse_dashboard_args

APP = """
from taskq.event_stores import InMemoryEventStore
from taskq_inmemory import InMemoryBroker

broker = InMemoryBroker().with_event_store(InMemoryEventStore())
"""


AUTH = {"authorization": "Bearer tok"}


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``taskq dashboard`` on a free port with a token from the environment; URL, process."""
    name = f"dash_cli_app_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(APP)
    port = free_port()
    env = {**os.environ, "TASKQ_DASHBOARD_TOKEN": "tok", "TASKQ_DASHBOARD_PORT": str(port)}
    command = [sys.executable, "-m", "taskq.cli", "dashboard", f"{name}:broker"]
    process = subprocess.Popen(
        [*command, "--app-dir", str(tmp_path), "--log-level", "WARNING"], env=env
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        # a graceful stop: uvicorn shuts the app down, then exits by the signal it got
        assert process.wait(30) in (0, -signal.SIGTERM)


def test_the_command_serves_the_dashboard_behind_its_token(
    dashboard: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, process = dashboard

    def answers() -> httpx.Response | None:
        try:
            return httpx.get(url + "/api/overview", headers=AUTH)
        except httpx.TransportError:
            return None

    response = eventually_blocking(answers, timeout=30, interval=0.1)
    assert response.status_code == 200
    assert response.json()["broker"] == "InMemoryBroker"
    assert httpx.get(url + "/").status_code == 401
    page = httpx.get(url + "/tasks?token=tok")
    assert page.status_code == 200
    assert "taskq dashboard" in page.text
    with httpx.stream("GET", url + "/api/stream", headers=AUTH, timeout=30) as stream:
        lines = stream.iter_lines()
        assert next(lines) == "event: overview"
        assert next(lines).startswith("data: {")
        process.terminate()  # a page is still open: the stop ends its stream
        assert process.wait(10) in (0, -signal.SIGTERM)


def test_the_help_lists_every_option_with_its_environment_twin() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taskq.cli", "dashboard", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for twin in ("HOST", "PORT", "TOKEN", "BASIC_AUTH", "READ_ONLY", "SCHEDULER", "EVENTS"):
        assert f"[TASKQ_DASHBOARD_{twin}]" in done.stdout


@pytest.mark.parametrize("port", ["0", "65536", "70000", "http"])
def test_a_port_no_server_can_listen_on_is_a_usage_error(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, environ in (
        (["app:broker", "--port", port], {}),
        (["app:broker"], {"TASKQ_DASHBOARD_PORT": port}),
    ):
        with pytest.raises(SystemExit) as exit_info:
            parse_dashboard_args(argv, environ)
        assert exit_info.value.code == 2
        assert f"expected a port from 1 to 65535, got {port!r}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--basic-auth", "admin", "expected USER:PASSWORD"),
        ("--basic-auth", ":secret", "expected USER:PASSWORD"),
        ("--basic-auth", "", "expected USER:PASSWORD"),
        ("--token", "", "expected a token, got an empty string"),
    ],
)
def test_credentials_no_request_could_carry_are_a_usage_error(
    flag: str, value: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    variable = "TASKQ_DASHBOARD_" + flag.removeprefix("--").replace("-", "_").upper()
    for argv, environ in (([f"{flag}={value}"], {}), ([], {variable: value})):
        with pytest.raises(SystemExit) as exit_info:
            parse_dashboard_args(["app:broker", *argv], environ)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert expected in err
        assert value == "" or value not in err.replace(flag, "")  # the secret is not echoed


def test_basic_auth_credentials_may_hold_a_colon_in_the_password() -> None:
    options = parse_dashboard_args(["app:broker", "--basic-auth", "ops:pa:ss"], {})
    assert options.basic_auth == "ops:pa:ss"


def test_the_app_directory_has_the_short_form_of_the_other_commands(tmp_path: Path) -> None:
    assert parse_dashboard_args(["app:broker", "-d", str(tmp_path)], {}).app_dir == str(tmp_path)


def test_an_event_store_file_that_does_not_exist_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "missing_store_app.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    argv = ["missing_store_app:broker", "--events", "sqlite://mistyped.sqlite3"]
    assert main(argv) == 2
    assert "no event store file 'mistyped.sqlite3'" in capsys.readouterr().err
    assert not (tmp_path / "mistyped.sqlite3").exists()


def test_a_port_in_use_is_one_line_and_a_usage_error(tmp_path: Path) -> None:
    name = f"dash_cli_app_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(APP)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "taskq.cli", "dashboard", f"{name}:broker", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"taskq dashboard: error: cannot listen on 127.0.0.1:{port}: the port is in use "
        "(another process listens on it): stop that process or give another --port"
    ]


def test_an_address_that_is_not_this_hosts_is_one_line_and_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"dash_cli_app_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(APP)
    monkeypatch.setattr(sys, "path", list(sys.path))
    argv = [f"{name}:broker", "-d", str(tmp_path), "--host", "192.0.2.1", "--token", "tok"]
    try:
        assert main(argv) == 2  # 192.0.2.1 (TEST-NET-1) is no address of this host
    finally:
        sys.modules.pop(name, None)
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("taskq dashboard: error: cannot listen on 192.0.2.1:8000: ")
