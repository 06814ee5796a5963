"""Who may see the dashboard and how its pages are protected.

`Auth` checks a bearer token or basic-auth credentials in constant time. `SecurityMiddleware`
asks for them on every request, refuses a POST without the page's CSRF token and, when there
are no credentials to ask for, a request naming another host than loopback (a site whose
name was made to point at 127.0.0.1, "DNS rebinding", would read the dashboard and act with
its CSRF token). It sets the headers that keep a page from running anything but the
dashboard's own script: a strict Content-Security-Policy, no sniffing, no framing.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING

from taskq.toolkit import is_loopback_host
from taskq_dashboard.errors import InsecureBindError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The header a POST carries the page's CSRF token in.
CSRF_HEADER = "x-csrf-token"
#: The cookie a browser keeps the token in after ``?token=...``.
TOKEN_COOKIE = "taskq_dashboard_token"
#: Scripts, styles and everything else only from the dashboard itself; no inline code.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
#: Why a request naming another host than loopback is refused by a dashboard without auth.
UNAUTHENTICATED_HOST = (
    "this dashboard has no authentication and answers only requests to 127.0.0.1, ::1 or "
    "localhost: open it at one of those, or give it a token"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


@dataclass(frozen=True)
class Auth:
    """The credentials the dashboard asks for: a token, basic auth (``user:password``), or both.

    With neither, every request is let in (fine on 127.0.0.1 only; see `check_bind`). An empty
    token, or basic credentials without a user and a colon (which no browser could send), are
    a `ValueError`: they would leave the dashboard open, or closed to everyone.
    """

    token: str | None = None
    basic: str | None = None

    def __post_init__(self) -> None:
        if self.token is not None and not self.token:
            raise ValueError("expected a token, got an empty string")
        if self.basic is not None:
            user, colon, _ = self.basic.partition(":")
            if not (user and colon):
                raise ValueError("expected USER:PASSWORD: a user name, a colon, then the password")

    @property
    def required(self) -> bool:
        """Whether requests must carry credentials."""
        return bool(self.token or self.basic)

    def allows(self, authorization: str | None, cookie_token: str | None) -> bool:
        """Whether an ``Authorization`` header (or the token cookie) carries the credentials."""
        if not self.required:
            return True
        scheme, _, value = (authorization or "").partition(" ")
        if self.token and scheme.lower() == "bearer" and _same(value.strip(), self.token):
            return True
        if self.token and cookie_token is not None and _same(cookie_token, self.token):
            return True
        return bool(self.basic and scheme.lower() == "basic" and _same(_basic(value), self.basic))


def check_bind(host: str, auth: Auth) -> None:
    """Refuse (`InsecureBindError`) to listen on any address but loopback without auth."""
    if auth.required or is_loopback_host(host):
        return
    raise InsecureBindError(
        f"refusing to listen on {host} without authentication: give --token (or "
        "--basic-auth user:password), or listen on 127.0.0.1"
    )


@dataclass
class SecurityMiddleware:
    """Authentication, CSRF checks on POST and security headers around the dashboard app."""

    app: ASGIApp
    auth: Auth
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let the request through, or answer 401/403 without calling the app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        query_token = _query_token(scope)
        cookie = _cookie(headers.get("cookie"))
        offered = query_token if query_token is not None else cookie
        if not self.auth.allows(headers.get("authorization"), offered):
            await _refuse(send, 401, "authentication required", basic=bool(self.auth.basic))
            return
        if not self.auth.required and not is_loopback_host(_host_name(headers.get("host", ""))):
            await _refuse(send, 403, UNAUTHENTICATED_HOST)
            return
        if scope["method"] == "POST" and not _same(headers.get(CSRF_HEADER, ""), self.csrf_token):
            await _refuse(send, 403, "missing or wrong CSRF token: reload the page")
            return
        remember = (  # the token of the link itself, never another query value
            query_token is not None and self.auth.token is not None
        ) and _same(query_token, self.auth.token)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(SECURITY_HEADERS)
                if remember:
                    cookie_value = (
                        f"{TOKEN_COOKIE}={query_token}; HttpOnly; SameSite=Strict; Path=/"
                    )
                    extra.append((b"set-cookie", cookie_value.encode()))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _basic(value: str) -> str:
    try:
        return base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def _host_name(header: str) -> str:
    """The host name of a ``Host`` header, without its port: ``[::1]:8000`` gives ``::1``."""
    header = header.lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def _query_token(scope: Scope) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def _cookie(header: str | None) -> str | None:
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed cookie header is no credential
        return None
    morsel = jar.get(TOKEN_COOKIE)
    return None if morsel is None else morsel.value


async def _refuse(send: Send, status: int, text: str, *, basic: bool = False) -> None:
    headers = [(b"content-type", b"application/json"), *SECURITY_HEADERS]
    if basic and status == 401:
        headers.append((b"www-authenticate", b'Basic realm="taskq dashboard"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps({"error": text}).encode()})
