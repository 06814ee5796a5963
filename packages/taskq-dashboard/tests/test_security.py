"""Security: auth (token, basic), loopback by default, CSRF on every POST, CSP on every page."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import httpx
import pytest

from taskq_dashboard import Auth, DashboardSettings, InsecureBindError, cli, create_app
from taskq_dashboard.cli import DashboardOptions, main, parse_dashboard_args
from taskq_dashboard.security import CONTENT_SECURITY_POLICY, TOKEN_COOKIE, check_bind
from taskq_inmemory import InMemoryBroker

from .conftest import client_of, csrf_of


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


async def test_a_token_is_required_when_set(broker: InMemoryBroker) -> None:
    app = create_app(broker, auth=Auth(token="s3cret"))
    async with client_of(app) as client:
        assert (await client.get("/api/overview")).status_code == 401
        assert (await client.get("/", headers={"authorization": "Bearer wrong"})).status_code == 401
        ok = await client.get("/api/overview", headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        first = await client.get("/?token=s3cret")  # a browser opens the link once
        assert first.status_code == 200
        assert f"{TOKEN_COOKIE}=s3cret" in first.headers["set-cookie"]
        assert "HttpOnly" in first.headers["set-cookie"]
        assert (await client.get("/api/overview")).status_code == 200  # the cookie carries it
    async with client_of(app) as other:
        assert (await other.get("/?token=nope")).status_code == 401
        # a wrong ?token= beside good credentials is not written into a cookie
        good = {"authorization": "Bearer s3cret"}
        response = await other.get("/?token=x%0d%0aSet-Cookie:%20a=b", headers=good)
        assert response.status_code == 200
        assert "set-cookie" not in response.headers


async def test_basic_auth_is_required_when_set(broker: InMemoryBroker) -> None:
    app = create_app(broker, auth=Auth(basic="admin:pa:ss"))
    async with client_of(app) as client:
        refused = await client.get("/")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
        for wrong in ("admin:nope", "admin", "", "not base64!"):
            header = "Basic not-base64!" if wrong == "not base64!" else basic(wrong)
            assert (await client.get("/", headers={"authorization": header})).status_code == 401
        ok = await client.get("/api/workers", headers={"authorization": basic("admin:pa:ss")})
        assert ok.status_code == 200


async def test_every_response_carries_a_strict_content_security_policy(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/", "/api/overview", "/static/dashboard.js", "/nowhere"):
        headers = (await client.get(path)).headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY


async def test_a_post_without_the_csrf_token_is_refused(client: httpx.AsyncClient) -> None:
    token = await csrf_of(client)
    for headers in ({}, {"x-csrf-token": "forged"}, {"x-csrf-token": token[:-1]}):
        response = await client.post("/api/dead-letters/purge", headers=headers, json={})
        assert response.status_code == 403
        assert "CSRF" in response.json()["error"]
    # with the page's token the request reaches the action (which this broker cannot do)
    passed = await client.post("/api/dead-letters/purge", headers={"x-csrf-token": token})
    assert passed.status_code == 400
    assert "keeps no dead letters" in passed.json()["error"]


async def test_read_only_hides_and_refuses_every_action(broker: InMemoryBroker) -> None:
    app = create_app(broker, settings=DashboardSettings(read_only=True))
    async with client_of(app) as client:
        features = (await client.get("/api/overview")).json()["features"]
        assert features["read_only"] is True
        assert not any(features[name] for name in ("cancel", "dead_letter_actions"))
        assert features["schedule_actions"] is False
        token = await csrf_of(client)
        response = await client.post("/api/dead-letters/replay", headers={"x-csrf-token": token})
        assert response.status_code == 400
        assert response.json()["error"] == "the dashboard is read-only"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"])
def test_loopback_needs_no_auth(host: str) -> None:
    check_bind(host, Auth())


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_any_other_address_needs_auth(host: str) -> None:
    with pytest.raises(InsecureBindError, match="without authentication"):
        check_bind(host, Auth())
    check_bind(host, Auth(token="t"))
    check_bind(host, Auth(basic="a:b"))


def test_the_command_refuses_to_listen_in_the_open_without_auth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the command would hand the root logger a handler on this test's captured stderr, which
    # pytest closes after it: every later log record of this process would fail to print
    monkeypatch.setattr(cli, "configure_logging", lambda level, log_format: None)
    name = f"dash_app_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("raise SystemExit('the module must not be imported')\n")
    code = main([f"{name}:broker", "--host", "0.0.0.0", "--app-dir", str(tmp_path)])
    assert code == 2
    assert "refusing to listen on 0.0.0.0 without authentication" in capsys.readouterr().err


def test_every_option_has_its_environment_twin_and_the_command_line_wins() -> None:
    environ = {
        "TASKQ_DASHBOARD_SCHEDULER": "app:scheduler",
        "TASKQ_DASHBOARD_EVENTS": "sqlite://events.db",
        "TASKQ_DASHBOARD_HOST": "0.0.0.0",
        "TASKQ_DASHBOARD_PORT": "9000",
        "TASKQ_DASHBOARD_TOKEN": "from-env",
        "TASKQ_DASHBOARD_BASIC_AUTH": "a:b",
        "TASKQ_DASHBOARD_READ_ONLY": "yes",
        "TASKQ_DASHBOARD_STALE_AFTER": "12",
        "TASKQ_DASHBOARD_REFRESH": "5",
        "TASKQ_DASHBOARD_LOG_LEVEL": "DEBUG",
    }
    options = parse_dashboard_args(["app:broker", "--port", "9001"], environ)
    assert options == DashboardOptions(
        broker="app:broker",
        scheduler="app:scheduler",
        events="sqlite://events.db",
        host="0.0.0.0",
        port=9001,
        token="from-env",
        basic_auth="a:b",
        read_only=True,
        stale_after=12,
        refresh=5,
        log_level="DEBUG",
    )
    assert parse_dashboard_args(["app:broker"], {}) == DashboardOptions(broker="app:broker")


def test_the_command_is_registered_as_a_taskq_subcommand() -> None:
    from importlib.metadata import entry_points

    [found] = [ep for ep in entry_points(group="taskq.cli") if ep.name == "dashboard"]
    assert found.load() is main


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000"])
async def test_without_auth_loopback_names_are_served(broker: InMemoryBroker, host: str) -> None:
    async with client_of(create_app(broker)) as client:
        assert (await client.get("/api/overview", headers={"host": host})).status_code == 200


@pytest.mark.parametrize("host", ["evil.example:8000", "127.0.0.1.evil.example", "localhost.evil"])
async def test_without_auth_another_host_name_is_refused(broker: InMemoryBroker, host: str) -> None:
    # DNS rebinding: a page of evil.example, its name pointed at 127.0.0.1 once loaded, reads
    # the dashboard as its own origin (arguments, the CSRF token) and purges the dead letters
    async with client_of(create_app(broker)) as client:
        token = await csrf_of(client)
        for response in (
            await client.get("/", headers={"host": host}),
            await client.get("/api/tasks", headers={"host": host}),
            await client.post(
                "/api/dead-letters/purge", json={}, headers={"host": host, "x-csrf-token": token}
            ),
        ):
            assert response.status_code == 403
            assert "no authentication" in response.json()["error"]
    async with client_of(create_app(broker, auth=Auth(token="s3cret"))) as client:
        response = await client.get(
            "/api/overview", headers={"host": host, "authorization": "Bearer s3cret"}
        )
        assert response.status_code == 200  # with auth, any name the server is reached by


@pytest.mark.parametrize(
    "credentials", [{"token": ""}, {"basic": ""}, {"basic": "admin"}, {"basic": ":pass"}]
)
def test_credentials_that_would_open_or_close_the_dashboard_are_refused(
    credentials: dict[str, str],
) -> None:
    with pytest.raises(ValueError, match="expected"):
        Auth(**credentials)
