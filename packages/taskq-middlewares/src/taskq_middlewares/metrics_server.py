"""The HTTP endpoint of the metrics: served by one worker of a group, taken over if it stops.

Every worker process of a group tries to listen on the address; one gets it and serves the
sum over the group. The others try again every `RETRY_BIND_S` seconds, so when the serving
worker stops or dies another one takes its place. With `MetricsTLS` the endpoint is HTTPS and
answers only scrapers holding a client certificate signed by the given authority.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskq_middlewares.metric_files import files_locked, tidy

logger = logging.getLogger("taskq.prometheus")

#: Seconds between two attempts to listen while another process holds the address: the longest
#: the endpoint stays unanswered after its serving worker stops, unless a new worker takes it
#: sooner. An attempt is one failing ``bind``, a system call.
RETRY_BIND_S = 0.1


@dataclass(frozen=True)
class MetricsTLS:
    """Serve the metrics over HTTPS to scrapers that present a client certificate.

    Attributes:
        certfile: The endpoint's certificate (PEM).
        keyfile: Its private key (PEM).
        client_cafile: The authority (PEM) that signs the scrapers' certificates (Prometheus's
            ``tls_config: {cert_file, key_file}``); a request without one is refused.
    """

    certfile: str
    keyfile: str
    client_cafile: str


class MetricsServer:
    """Serves the metrics of ``directory`` on ``addr:port`` once the address is free."""

    def __init__(
        self, directory: Path, addr: str, port: int, tls: MetricsTLS | None = None
    ) -> None:
        """Prepare to serve; nothing happens before `start`."""
        self.directory = directory
        self.addr = addr
        self.port = port
        self.tls = tls
        self._stopping = threading.Event()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def serving(self) -> bool:
        """Whether this process is the one serving the endpoint now."""
        return self._server is not None

    def start(self) -> None:
        """Listen now if the address is free, else keep trying in a background thread."""
        if self._try_listen():
            return
        logger.info(
            "Metrics: %s:%d is taken (another worker of this group serves it); "
            "this process takes over if it frees",
            self.addr,
            self.port,
        )
        self._thread = threading.Thread(target=self._wait_for_address, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (or waiting to)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(RETRY_BIND_S + 1)
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def _wait_for_address(self) -> None:
        while not self._stopping.wait(RETRY_BIND_S):
            if self._try_listen():
                return

    def _try_listen(self) -> bool:
        from prometheus_client import start_http_server

        tls: dict[str, Any] = {}
        if self.tls is not None:
            tls = {
                "certfile": self.tls.certfile,
                "keyfile": self.tls.keyfile,
                "client_cafile": self.tls.client_cafile,
                "client_auth_required": True,
            }
        try:
            self._server, _ = start_http_server(
                self.port, addr=self.addr, registry=group_registry(self.directory), **tls
            )
        except OSError:
            return False
        scheme = "http" if self.tls is None else "https"
        logger.info(
            "Metrics served on %s://%s:%d/ (pid %d)", scheme, self.addr, self.port, os.getpid()
        )
        return True


def group_registry(directory: Path) -> Any:
    """A registry that sums the metric files in ``directory``."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(GroupCollector(directory))
    return registry


class GroupCollector:
    """Sums the metric files of a group, first tidying those of dead processes (`tidy`)."""

    def __init__(self, directory: Path) -> None:
        """Collect from ``directory``."""
        self.directory = directory

    def collect(self) -> Any:
        """Return the summed metrics of the live and the finished processes of the group."""
        from prometheus_client.multiprocess import MultiProcessCollector

        tidy(self.directory)
        with files_locked(self.directory):  # no merge removes a file between glob and read
            return list(MultiProcessCollector.merge(metric_files(self.directory)))


def metric_files(directory: Path) -> list[str]:
    """The metric files of ``directory`` that hold something to read.

    A process starting now creates its files empty and sizes them a moment later; read in
    between, an empty file failed the whole scrape (prometheus-client reads its header).
    """
    files = []
    for entry in directory.glob("*.db"):
        with contextlib.suppress(OSError):  # gone meanwhile: a process's file merged away
            if entry.stat().st_size > 0:
                files.append(str(entry))
    return files
