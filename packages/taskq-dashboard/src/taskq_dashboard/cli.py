"""``taskq dashboard``: serve the dashboard of a broker (and a scheduler) over HTTP.

Registered in the ``taskq.cli`` entry-point group; each option has a ``TASKQ_DASHBOARD_*``
environment twin (give the token as ``TASKQ_DASHBOARD_TOKEN`` rather than on the command
line, where other users of the host can read it).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, cast

from taskq.exceptions import TaskiqError
from taskq.toolkit import (
    DEFAULT_STALE_AFTER_S,
    EnvArgumentParser,
    add_working_directory_to_path,
    configure_logging,
    converters,
    event_store_of,
    import_broker,
    import_object,
)
from taskq_dashboard.app import DashboardApp, create_app
from taskq_dashboard.errors import AddressUnavailableError
from taskq_dashboard.security import Auth, check_bind
from taskq_dashboard.state import DashboardSettings, SchedulerLike

ENV_PREFIX = "TASKQ_DASHBOARD_"
EXIT_USAGE = 2
LOG_FORMAT = "[%(asctime)s][dashboard][%(levelname)s] %(name)s: %(message)s"
#: Seconds a stop waits for open pages' live-update streams before closing them.
SHUTDOWN_GRACE_S = 3


@dataclass(frozen=True)
class DashboardOptions:
    """The options of ``taskq dashboard``; each has a ``TASKQ_DASHBOARD_*`` environment twin."""

    broker: str
    scheduler: str | None = None
    events: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    basic_auth: str | None = None
    read_only: bool = False
    stale_after: float = DEFAULT_STALE_AFTER_S
    refresh: float = 2.0
    app_dir: str | None = None
    log_level: str = "INFO"


def main(argv: list[str]) -> int:
    """Serve the dashboard until interrupted; exit 2 on a bad option or an unsafe address."""
    try:
        options = parse_dashboard_args(argv)
    except SystemExit as exit_:  # argparse exits on --help and on usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    configure_logging(options.log_level, LOG_FORMAT)
    try:
        app = build_app(options)
    except TaskiqError as error:
        print(f"taskq dashboard: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        sockets = listen(options.host, options.port)
    except AddressUnavailableError as error:
        print(f"taskq dashboard: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"taskq dashboard on http://{address(options.host, options.port)}/", file=sys.stderr)
    serve(app, options, sockets)
    return 0


def address(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets (``[::1]:8000``) as in a URL."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen(host: str, port: int) -> list[socket.socket]:
    """Bind ``port`` on every address ``host`` resolves to, as uvicorn would.

    Raises `AddressUnavailableError` when it cannot (the port in use, not this host's address).

    Binding before uvicorn starts lets a port in use be one line and a usage error, rather
    than uvicorn's log lines and its exit status 3 after the app started.
    """
    where = address(host, port)
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise AddressUnavailableError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, protocol, _, sockaddr in dict.fromkeys(found):
            sock = socket.socket(family, kind, protocol)
            sockets.append(sock)
            if os.name == "posix":  # as asyncio does; on Windows it would share a port in use
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AddressUnavailableError(
                f"cannot listen on {where}: the port is in use (another process listens on "
                "it): stop that process or give another --port"
            ) from None
        raise AddressUnavailableError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    return sockets


def serve(
    app: DashboardApp, options: DashboardOptions, sockets: list[socket.socket] | None = None
) -> None:
    """Serve ``app`` with uvicorn until SIGTERM/SIGINT; open pages' streams end at once then.

    ``sockets`` are bound ones (`listen`) to serve on; without them uvicorn binds
    ``options.host`` and ``options.port`` itself.
    """
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            app.state.end_streams()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level=options.log_level.lower(),
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    Server(config).run(sockets=sockets)


def parse_dashboard_args(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> DashboardOptions:
    """The options of ``argv``, with ``environ`` (default: os.environ) filling the gaps."""
    return DashboardOptions(**build_parser().parse_options(argv, environ))


def build_app(options: DashboardOptions) -> DashboardApp:
    """Check the address against the auth setting, import the targets, build the app."""
    auth = Auth(token=options.token, basic=options.basic_auth)
    check_bind(options.host, auth)
    add_working_directory_to_path(options.app_dir)
    broker = import_broker(options.broker)
    scheduler: SchedulerLike | None = None
    if options.scheduler is not None:
        found = import_object(options.scheduler)
        if not isinstance(getattr(found, "sources", None), list):
            raise TaskiqError(f"{options.scheduler!r} is not a scheduler (it has no sources)")
        scheduler = cast("SchedulerLike", found)
    settings = DashboardSettings(
        read_only=options.read_only, stale_after=options.stale_after, refresh=options.refresh
    )
    return create_app(
        broker,
        event_store=event_store_of(broker, options.events),
        scheduler=scheduler,
        settings=settings,
        auth=auth,
    )


def build_parser() -> EnvArgumentParser:
    """The argument parser of ``taskq dashboard``."""
    parser = EnvArgumentParser(
        prog="taskq dashboard",
        description="Serve a web dashboard of a broker's tasks, workers, dead letters and a "
        "scheduler's schedules. It listens on 127.0.0.1 unless told otherwise, and refuses "
        "any other address without --token or --basic-auth.",
        env_prefix=ENV_PREFIX,
        defaults={field.name: field.default for field in dataclasses.fields(DashboardOptions)},
    )
    parser.add_argument("broker", help="the broker, as module:attribute (e.g. myapp.broker:broker)")
    text: dict[str, tuple[str, Any, str]] = {
        "--scheduler": ("the scheduler whose sources to show, as module:attribute", str, "TARGET"),
        "--events": (
            "the event store to read: a URL (sqlite://PATH, redis://HOST/DB?prefix=P) or "
            "module:attribute",
            str,
            "STORE",
        ),
        "--host": ("the address to listen on", str, "ADDRESS"),
        "--port": ("the port to listen on", converters.port, "PORT"),
        "--token": (
            "a token every request must carry (Bearer, or ?token= once)",
            _credential("token"),
            "TOKEN",
        ),
        "--basic-auth": (
            "basic-auth credentials every request must carry",
            _credential("basic"),
            "USER:PASSWORD",
        ),
        "--stale-after": (
            "seconds after its last heartbeat a worker is flagged stale",
            converters.positive_seconds,
            "SECONDS",
        ),
        "--refresh": (
            "seconds between two live updates of open pages",
            converters.positive_seconds,
            "SECONDS",
        ),
        "--app-dir": (
            "directory to import the targets from",
            converters.directory,
            "DIR",
        ),
        "--log-level": ("the logging level", converters.log_level, "LEVEL"),
    }
    worded_defaults = {
        "--events": "the broker's (with_event_store)",
        "--app-dir": "the current directory",
    }
    # short forms, spelled as in taskq worker and taskq status
    short = {"--app-dir": ("-d",)}
    for flag, (help_text, convert, metavar) in text.items():
        parser.add_option(
            flag,
            *short.get(flag, ()),
            help=help_text,
            convert=convert,
            metavar=metavar,
            default_text=worded_defaults.get(flag),
            secret=flag in ("--token", "--basic-auth"),
        )
    parser.add_option(
        "--read-only",
        help="hide and refuse every action (cancel, replay, purge, schedule changes)",
        action=argparse.BooleanOptionalAction,
        env_convert=converters.boolean,
    )
    return parser


def _credential(field: str) -> Callable[[str], str]:
    """Return a reader of the `Auth` field ``field`` (``token``, ``basic``), checked by `Auth`."""

    def convert(text: str) -> str:
        try:
            Auth(**{field: text})
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return convert
